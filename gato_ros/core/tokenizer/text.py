"""Text tokens: a SentencePiece model trained on the project's own instruction corpus.

Ids live in [0, TEXT_VOCAB_SIZE) as in Gato; our vocabulary is much smaller (TEXT_MODEL_VOCAB_SIZE).
The shipped model is assets/instructions.model; train_text_model() rebuilds it reproducibly from
assets/instructions.txt:
  python -c "from gato_ros.core.tokenizer import train_text_model; train_text_model()"
"""

import functools
import pathlib
import tempfile

import numpy as np
import sentencepiece as spm

from .continuous import TEXT_VOCAB_SIZE

ASSETS = pathlib.Path(__file__).resolve().parent / 'assets'
CORPUS_PATH = ASSETS / 'instructions.txt'
MODEL_PATH = ASSETS / 'instructions.model'
TEXT_MODEL_VOCAB_SIZE = 512


def train_text_model(output_path=MODEL_PATH, corpus_path=CORPUS_PATH,
                     vocab_size: int = TEXT_MODEL_VOCAB_SIZE) -> pathlib.Path:
    """Train the SentencePiece (BPE) model deterministically and write it to `output_path`.

    One thread, no sentence sampling or shuffling: the same corpus gives the same vocabulary. Byte fallback
    (256 byte pieces) means any text encodes without unknown tokens. Only unk (id 0) is reserved; Gato's
    layout needs no bos/eos/pad. The normaliser lower-cases (NFKC case folding).
    """
    output_path = pathlib.Path(output_path)
    with tempfile.TemporaryDirectory() as tmp:
        prefix = pathlib.Path(tmp) / 'spm'
        spm.SentencePieceTrainer.train(
            input=str(corpus_path), model_prefix=str(prefix), vocab_size=vocab_size, model_type='bpe',
            character_coverage=1.0, byte_fallback=True, num_threads=1, input_sentence_size=0,
            shuffle_input_sentence=False, unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
            normalization_rule_name='nmt_nfkc_cf', minloglevel=2)
        output_path.write_bytes(prefix.with_suffix('.model').read_bytes())
    return output_path


@functools.lru_cache(maxsize=None)
def text_processor(model_path=MODEL_PATH) -> spm.SentencePieceProcessor:
    """The loaded SentencePiece model (cached per path)."""
    if not pathlib.Path(model_path).is_file():
        raise FileNotFoundError(f'SentencePiece model {model_path} is missing; run '
                                f'gato_ros.core.tokenizer.train_text_model() to train it')
    processor = spm.SentencePieceProcessor(model_file=str(model_path))
    if processor.get_piece_size() > TEXT_VOCAB_SIZE:
        raise ValueError(f'{model_path}: vocabulary of {processor.get_piece_size()} exceeds {TEXT_VOCAB_SIZE}')
    return processor


def tokenize_text(text: str) -> np.ndarray:
    """int64 ids in [0, TEXT_VOCAB_SIZE) for `text` (lower-cased by the model's normaliser)."""
    if not isinstance(text, str):
        raise TypeError(f'tokenize_text: expected str, got {type(text).__name__}')
    return np.asarray(text_processor().encode(text), dtype=np.int64)


def detokenize_text(ids) -> str:
    """Inverse of tokenize_text (up to the normaliser: lower case, NFKC, collapsed whitespace)."""
    ids = np.asarray(ids, dtype=np.int64).ravel()
    size = text_processor().get_piece_size()
    bad = (ids < 0) | (ids >= size)
    if bad.any():
        raise ValueError(f'detokenize_text: ids {sorted(set(ids[bad].tolist()))[:8]} are outside the text '
                         f'vocabulary [0, {size})')
    return text_processor().decode(ids.tolist())

