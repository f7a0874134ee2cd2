"""Gato tokenization of numbers, images and text (docs/design.md §3)."""

import numpy as np
import pytest
import sentencepiece as spm
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gato_ros.core.tokenizer import (CONTINUOUS_OFFSET, NUM_BINS, SEPARATOR_ID, TEXT_VOCAB_SIZE, VOCAB_SIZE,
                                     detokenize_continuous, detokenize_text, image_to_patches, mu_law_decode,
                                     mu_law_encode, patch_intervals, text_processor, tokenize_continuous,
                                     tokenize_discrete, tokenize_text, train_text_model)
from gato_ros.core.tokenizer.text import CORPUS_PATH, MODEL_PATH

HALF_BIN = 1.0 / NUM_BINS   # bins are 2/1024 wide on [-1, 1]
finite = st.floats(allow_nan=False, allow_infinity=False)


def test_constants_match_the_design():
    constants = (TEXT_VOCAB_SIZE, CONTINUOUS_OFFSET, NUM_BINS, SEPARATOR_ID, VOCAB_SIZE)
    assert constants == (32000, 32000, 1024, 33024, 33025)


def test_mu_law_known_values_and_inverse():
    # F(M) = 1 exactly; F(1) = log(101) / log(25601)
    np.testing.assert_allclose(mu_law_encode([-256.0, 0.0, 1.0, 256.0]),
                               [-1.0, 0.0, np.log(101) / np.log(25601), 1.0], rtol=1e-12)
    x = np.array([-200.0, -3.0, -1e-3, 0.0, 0.5, 7.0, 250.0])
    np.testing.assert_allclose(mu_law_decode(mu_law_encode(x)), x, rtol=1e-9, atol=1e-12)


def test_bin_edges_and_clipping():
    # 0 companded is 0 -> floor(0.5 * 1024) = 512; the extremes land in the first and last bins.
    assert tokenize_continuous([0.0, -256.0, 256.0, -1e9, 1e300]).tolist() == [32512, 32000, 33023, 32000, 33023]
    assert tokenize_continuous([-1.0, 0.0, 1.0], mu_law=False).tolist() == [32000, 32512, 33023]
    assert tokenize_continuous(np.zeros((2, 3))).shape == (2, 3)
    assert detokenize_continuous([32512], mu_law=False)[0] == pytest.approx(1.0 / NUM_BINS)


@settings(max_examples=300, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 16), elements=finite))
def test_ids_in_range_and_decode_within_half_a_bin(x):
    ids = tokenize_continuous(x)
    assert ids.dtype == np.int64
    assert ((ids >= CONTINUOUS_OFFSET) & (ids < CONTINUOUS_OFFSET + NUM_BINS)).all()
    y = np.clip(mu_law_encode(x), -1, 1)
    y_decoded = mu_law_encode(detokenize_continuous(ids))
    assert np.abs(y - y_decoded).max() <= HALF_BIN + 1e-9


@settings(max_examples=200, deadline=None)
@given(hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-1, 1)))
def test_actions_without_mu_law_decode_within_half_a_bin(a):
    decoded = detokenize_continuous(tokenize_continuous(a, mu_law=False), mu_law=False)
    assert np.abs(decoded - a).max() <= HALF_BIN + 1e-12


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises_naming_the_element(bad):
    x = np.zeros((2, 3))
    x[1, 2] = bad
    with pytest.raises(ValueError, match=r'element \(1, 2\) is .*non-finite'):
        tokenize_continuous(x)


def test_detokenize_rejects_ids_outside_the_continuous_range():
    with pytest.raises(ValueError, match=r'ids \[31999, 33024\] are outside'):
        detokenize_continuous([32000, 31999, 33024])


def test_discrete_values_are_their_own_ids_and_range_checked():
    assert tokenize_discrete(np.array([[0, 5], [1023, 7]])).tolist() == [[0, 5], [1023, 7]]
    with pytest.raises(ValueError, match=r'element \(1,\) is 1024'):
        tokenize_discrete([3, 1024])
    with pytest.raises(ValueError, match='is -1'):
        tokenize_discrete([-1])
    with pytest.raises(TypeError, match='expected integers'):
        tokenize_discrete([0.5])


def test_image_patches_match_a_hand_computed_example():
    # 16x32 image = one row of two patches. Left patch black with one full-green pixel at (3, 5);
    # right patch has red = 51 -> (51/255*2 - 1)/4 = -0.15. Black -> -0.25, 255 -> +0.25.
    image = np.zeros((16, 32, 3), np.uint8)
    image[3, 5, 1] = 255
    image[:, 16:, 0] = 51
    patches, rows, cols = image_to_patches(image)
    expected = np.full((2, 3, 16, 16), -0.25, np.float32)
    expected[0, 1, 3, 5] = 0.25
    expected[1, 0] = -0.15
    assert patches.dtype == np.float32 and patches.shape == (2, 3, 16, 16)
    np.testing.assert_allclose(patches, expected, atol=1e-7)
    assert rows.tolist() == [[0, 128], [0, 128]]
    assert cols.tolist() == [[0, 64], [64, 128]]


def test_patches_are_in_raster_order_with_row_and_column_buckets():
    image = np.zeros((32, 32, 3), np.uint8)
    for r in range(2):
        for c in range(2):
            image[16 * r:16 * (r + 1), 16 * c:16 * (c + 1)] = 10 * (2 * r + c)
    patches, rows, cols = image_to_patches(image)
    for k in range(4):
        np.testing.assert_allclose(patches[k], (10 * k / 255 * 2 - 1) / 4, atol=1e-7)
    assert rows.tolist() == [[0, 64], [0, 64], [64, 128], [64, 128]]
    assert cols.tolist() == [[0, 64], [64, 128], [0, 64], [64, 128]]


def test_patch_intervals_quantise_the_normalised_interval():
    assert patch_intervals(3).tolist() == [[0, 42], [42, 85], [85, 128]]   # floor(i/3*128)
    many = patch_intervals(200)   # more rows than buckets: intervals stay non-empty and inside [0, 128]
    assert (many[:, 1] > many[:, 0]).all() and many.min() >= 0 and many.max() <= 128


@pytest.mark.parametrize('image, match', [
    (np.zeros((20, 32, 3), np.uint8), '20x32 must be a positive multiple of 16'),
    (np.zeros((16, 16, 3), np.float32), 'uint8'),
    (np.zeros((16, 16), np.uint8), r'\(H, W, 3\)'),
])
def test_bad_images_are_rejected_clearly(image, match):
    with pytest.raises(ValueError, match=match):
        image_to_patches(image)


def test_text_round_trip_on_the_corpus_and_beyond():
    lines = CORPUS_PATH.read_text().splitlines()
    assert len(lines) >= 300
    for line in lines + ['Stack the RED block on the blue block', 'pick up the purple sphere quickly! ✓ 42']:
        ids = tokenize_text(line)
        assert ids.dtype == np.int64 and ((ids >= 0) & (ids < TEXT_VOCAB_SIZE)).all()
        assert 0 not in ids   # byte fallback: never the unknown token
        assert detokenize_text(ids) == line.lower()
    assert len(tokenize_text('stack the red block on the blue block')) <= 10   # the corpus words are whole pieces


def test_retraining_reproduces_the_shipped_vocabulary(tmp_path):
    retrained = spm.SentencePieceProcessor(model_file=str(train_text_model(tmp_path / 'spm.model')))
    shipped = text_processor(MODEL_PATH)
    vocab = lambda sp: [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    assert vocab(retrained) == vocab(shipped)
