"""Gato token ids for numbers: mu-law companded continuous values and discrete integers.

Id layout of the one shared embedding table (docs/design.md §3):
  [0, 32000)       text (SentencePiece) and discrete values (which use [0, 1024))
  [32000, 33024)   continuous values: 1024 uniform bins on [-1, 1]
  33024            the '|' separator between a timestep's observation and its action
"""

import numpy as np

TEXT_VOCAB_SIZE = 32000
CONTINUOUS_OFFSET = TEXT_VOCAB_SIZE
NUM_BINS = 1024
SEPARATOR_ID = CONTINUOUS_OFFSET + NUM_BINS   # 33024
VOCAB_SIZE = SEPARATOR_ID + 1                  # 33025
MU = 100.0
M = 256.0
_LOG_SCALE = np.log1p(M * MU)                  # log(M * mu + 1)


def _finite_floats(x, what: str) -> np.ndarray:
    """float64 copy of `x`; a ValueError names the first non-finite element."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f'{what}: expected real numbers, got {type(x).__name__}: {exc}') from None
    bad = ~np.isfinite(arr)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f'{what}: element {index} is {arr[index]} (non-finite values cannot be tokenized; '
                         f'{int(bad.sum())} of {arr.size} elements are non-finite)')
    return arr


def mu_law_encode(x) -> np.ndarray:
    """F(x) = sgn(x) log(|x| mu + 1) / log(M mu + 1); |x| <= M maps into [-1, 1] (not clipped here)."""
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(over='ignore'):   # |x| * mu overflows to inf for |x| near float max; clipping handles it
        return np.sign(x) * np.log1p(np.abs(x) * MU) / _LOG_SCALE


def mu_law_decode(y) -> np.ndarray:
    """Inverse of mu_law_encode: sgn(y) ((1 + M mu)^|y| - 1) / mu."""
    y = np.asarray(y, dtype=np.float64)
    return np.sign(y) * np.expm1(np.abs(y) * _LOG_SCALE) / MU


def tokenize_continuous(x, mu_law: bool = True) -> np.ndarray:
    """Ids in [32000, 33024), same shape as `x`.

    mu_law=True companding for observations; mu_law=False for actions already normalised to [-1, 1].
    Values outside [-1, 1] after companding are clipped (the top/bottom bin absorbs them).
    """
    x = _finite_floats(x, 'tokenize_continuous')
    y = np.clip(mu_law_encode(x) if mu_law else x, -1.0, 1.0)
    bins = np.clip(np.floor((y + 1.0) / 2.0 * NUM_BINS), 0, NUM_BINS - 1).astype(np.int64)
    return bins + CONTINUOUS_OFFSET


def detokenize_continuous(ids, mu_law: bool = True) -> np.ndarray:
    """float64 values at the bin centres (inverse mu-law when mu_law=True), same shape as `ids`."""
    ids = np.asarray(ids)
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f'detokenize_continuous: ids must be integers, got dtype {ids.dtype}')
    bad = (ids < CONTINUOUS_OFFSET) | (ids >= CONTINUOUS_OFFSET + NUM_BINS)
    if bad.any():
        raise ValueError(f'detokenize_continuous: ids {sorted(set(ids[bad].tolist()))[:8]} are outside the '
                         f'continuous range [{CONTINUOUS_OFFSET}, {CONTINUOUS_OFFSET + NUM_BINS})')
    y = (ids.astype(np.float64) - CONTINUOUS_OFFSET + 0.5) / NUM_BINS * 2.0 - 1.0
    return mu_law_decode(y) if mu_law else y


def tokenize_discrete(x) -> np.ndarray:
    """Integers (or booleans) in [0, 1024) are their own ids (Gato: row-major integers in [0, 1024))."""
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise TypeError(f'tokenize_discrete: expected integers, got dtype {arr.dtype}')
    ids = arr.astype(np.int64)
    bad = (ids < 0) | (ids >= NUM_BINS)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f'tokenize_discrete: element {index} is {ids[index]}, outside [0, {NUM_BINS})')
    return ids
