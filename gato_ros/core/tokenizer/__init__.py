"""Gato tokenization (docs/design.md §3; docs/tokenization.md): text, image patches, continuous, discrete, '|'."""

from .continuous import (CONTINUOUS_OFFSET, M, MU, NUM_BINS, SEPARATOR_ID, TEXT_VOCAB_SIZE, VOCAB_SIZE,
                         detokenize_continuous, mu_law_decode, mu_law_encode, tokenize_continuous,
                         tokenize_discrete)
from .image import PATCH_SIZE, POS_BUCKETS, image_to_patches, patch_intervals
from .sequence import (LOCAL_POS_SIZE, NO_POS, PATCH_PLACEHOLDER, TokenSequence, check_tokenizer_config,
                       detokenize_action, separator_and_actions, tokenize_action, tokenize_observation,
                       tokenize_timestep, tokenizer_config)
from .text import detokenize_text, text_processor, tokenize_text, train_text_model

__all__ = [
    'CONTINUOUS_OFFSET', 'LOCAL_POS_SIZE', 'M', 'MU', 'NO_POS', 'NUM_BINS', 'PATCH_PLACEHOLDER', 'PATCH_SIZE',
    'POS_BUCKETS', 'SEPARATOR_ID', 'TEXT_VOCAB_SIZE', 'VOCAB_SIZE', 'TokenSequence', 'check_tokenizer_config',
    'detokenize_action',
    'detokenize_continuous', 'detokenize_text', 'image_to_patches', 'mu_law_decode', 'mu_law_encode',
    'patch_intervals', 'separator_and_actions', 'text_processor', 'tokenize_action', 'tokenize_continuous',
    'tokenize_discrete', 'tokenize_observation', 'tokenize_text', 'tokenize_timestep', 'tokenizer_config',
    'train_text_model',
]
