"""Token sequences: observations and actions of one or more timesteps in Gato's layout.

A timestep is its observation tokens (fields in lexicographic key order), then the '|' separator, then the
action tokens. Image patches sit in `tokens` as PATCH_PLACEHOLDER; their pixels are in `patches`, in order.
"""

import dataclasses
import hashlib
from collections.abc import Mapping, Sequence

import numpy as np

from .continuous import (CONTINUOUS_OFFSET, MU, NUM_BINS, SEPARATOR_ID, TEXT_VOCAB_SIZE, VOCAB_SIZE, M,
                         detokenize_continuous, tokenize_continuous, tokenize_discrete)
from .image import PATCH_SIZE, POS_BUCKETS, image_to_patches
from .text import MODEL_PATH, tokenize_text

PATCH_PLACEHOLDER = -1
LOCAL_POS_SIZE = 512   # local observation position table: at most 512 observation tokens per timestep
NO_POS = -1            # local_pos of the separator and action tokens (they get no local position)


@dataclasses.dataclass(frozen=True, eq=False)
class TokenSequence:
    """One or more timesteps, concatenated. All arrays are validated on construction."""

    tokens: np.ndarray      # int64 [T]; PATCH_PLACEHOLDER where the position is an image patch
    patches: np.ndarray     # float32 [P, 3, 16, 16], [-1, 1] / 4; P = (tokens == PATCH_PLACEHOLDER).sum(), in order
    patch_rows: np.ndarray  # int64 [P, 2] quantised row interval [lo, hi) within [0, 128]
    patch_cols: np.ndarray  # int64 [P, 2] quantised column interval
    local_pos: np.ndarray   # int64 [T] 0..n-1 over the observation tokens of each timestep; NO_POS for '|'/actions
    loss_mask: np.ndarray   # bool [T] True on text and action tokens (the training targets)
    is_action: np.ndarray   # bool [T]
    timestep: np.ndarray    # int64 [T] 0, 0, ..., 1, 1, ... (starts at 0, steps by 0 or 1)

    def __post_init__(self):
        n = self.tokens.shape[0] if isinstance(self.tokens, np.ndarray) and self.tokens.ndim == 1 else None
        _check_array('tokens', self.tokens, np.int64, (n,))
        num_patches = int((self.tokens == PATCH_PLACEHOLDER).sum())
        _check_array('patches', self.patches, np.float32, (num_patches, 3, PATCH_SIZE, PATCH_SIZE))
        for name in ('patch_rows', 'patch_cols'):
            interval = getattr(self, name)
            _check_array(name, interval, np.int64, (num_patches, 2))
            if num_patches and not ((interval[:, 0] >= 0) & (interval[:, 0] < interval[:, 1])
                                    & (interval[:, 1] <= POS_BUCKETS)).all():
                raise ValueError(f'TokenSequence.{name}: intervals must satisfy 0 <= lo < hi <= {POS_BUCKETS}')
        for name, dtype in (('local_pos', np.int64), ('loss_mask', np.bool_), ('is_action', np.bool_),
                            ('timestep', np.int64)):
            _check_array(name, getattr(self, name), dtype, (n,))
        _check_range('tokens', self.tokens, PATCH_PLACEHOLDER, VOCAB_SIZE)
        _check_range('local_pos', self.local_pos, NO_POS, LOCAL_POS_SIZE)
        if n and (self.timestep[0] != 0 or not np.isin(np.diff(self.timestep), (0, 1)).all()):
            raise ValueError('TokenSequence.timestep: must start at 0 and increase by 0 or 1 per token')
        is_sep = self.tokens == SEPARATOR_ID
        is_obs = ~(self.is_action | is_sep)
        if (self.is_action & ((self.tokens == PATCH_PLACEHOLDER) | is_sep)).any():
            raise ValueError('TokenSequence.is_action: image patches and the separator cannot be action tokens')
        if ((self.local_pos >= 0) != is_obs).any():
            raise ValueError('TokenSequence.local_pos: observation tokens need a position >= 0, '
                             f"'|' and action tokens {NO_POS}")
        # Within a timestep: observation, then at most one '|', then actions.
        kind = np.where(is_obs, 0, np.where(is_sep, 1, 2))
        same_step = np.diff(self.timestep) == 0
        if (same_step & (np.diff(kind) < 0)).any() or (same_step & is_sep[1:] & is_sep[:-1]).any():
            raise ValueError("TokenSequence: within a timestep the order must be observation, '|', actions")

    def __len__(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_timesteps(self) -> int:
        return int(self.timestep[-1]) + 1 if len(self) else 0

    @property
    def num_patches(self) -> int:
        return int(self.patches.shape[0])

    @property
    def is_observation(self) -> np.ndarray:
        """bool [T]: tokens that are neither '|' nor actions (exactly those with local_pos >= 0)."""
        return self.local_pos >= 0

    def timestep_bounds(self) -> np.ndarray:
        """int64 [num_timesteps + 1]: timestep t occupies tokens [bounds[t], bounds[t + 1])."""
        return np.searchsorted(self.timestep, np.arange(self.num_timesteps + 1)).astype(np.int64)

    def select_timesteps(self, start: int | None = None, stop: int | None = None) -> 'TokenSequence':
        """Timesteps [start, stop) with Python slice semantics (negative counts from the end), renumbered
        from 0; e.g. seq.select_timesteps(-5) keeps the last five timesteps."""
        steps = range(self.num_timesteps)[slice(start, stop)]
        if len(steps) == 0:
            return TokenSequence.empty()
        bounds = self.timestep_bounds()
        return self._slice(int(bounds[steps.start]), int(bounds[steps.stop]), first_timestep=steps.start)

    def _slice(self, begin: int, end: int, first_timestep: int) -> 'TokenSequence':
        patch_index = np.cumsum(self.tokens == PATCH_PLACEHOLDER)   # patches before and at each token
        p0 = int(patch_index[begin - 1]) if begin else 0
        p1 = int(patch_index[end - 1]) if end else 0
        return TokenSequence(
            tokens=self.tokens[begin:end], patches=self.patches[p0:p1], patch_rows=self.patch_rows[p0:p1],
            patch_cols=self.patch_cols[p0:p1], local_pos=self.local_pos[begin:end],
            loss_mask=self.loss_mask[begin:end], is_action=self.is_action[begin:end],
            timestep=self.timestep[begin:end] - first_timestep)

    @staticmethod
    def empty() -> 'TokenSequence':
        return TokenSequence(
            tokens=np.zeros(0, np.int64), patches=np.zeros((0, 3, PATCH_SIZE, PATCH_SIZE), np.float32),
            patch_rows=np.zeros((0, 2), np.int64), patch_cols=np.zeros((0, 2), np.int64),
            local_pos=np.zeros(0, np.int64), loss_mask=np.zeros(0, bool), is_action=np.zeros(0, bool),
            timestep=np.zeros(0, np.int64))

    @staticmethod
    def concat(parts: Sequence['TokenSequence']) -> 'TokenSequence':
        """Join sequences in order, renumbering timesteps.

        Each part starts a new timestep after the previous parts, except a part whose first token is '|' or an
        action: it continues the previous timestep (observation + separator_and_actions(...) is one timestep).
        """
        parts = [p for p in parts if len(p)]
        if not parts:
            return TokenSequence.empty()
        offsets, next_step = [], 0
        for part in parts:
            continues = next_step > 0 and part.local_pos[0] == NO_POS
            offsets.append(next_step - 1 if continues else next_step)
            next_step = offsets[-1] + part.num_timesteps
        cat = np.concatenate
        return TokenSequence(
            tokens=cat([p.tokens for p in parts]), patches=cat([p.patches for p in parts]),
            patch_rows=cat([p.patch_rows for p in parts]), patch_cols=cat([p.patch_cols for p in parts]),
            local_pos=cat([p.local_pos for p in parts]), loss_mask=cat([p.loss_mask for p in parts]),
            is_action=cat([p.is_action for p in parts]),
            timestep=cat([p.timestep + off for p, off in zip(parts, offsets)]))


def _check_array(name: str, value, dtype, shape: tuple) -> None:
    if not isinstance(value, np.ndarray):
        raise TypeError(f'TokenSequence.{name}: expected a numpy array, got {type(value).__name__}')
    if value.dtype != dtype:
        raise TypeError(f'TokenSequence.{name}: expected dtype {np.dtype(dtype)}, got {value.dtype}')
    if value.shape != shape:
        raise ValueError(f'TokenSequence.{name}: expected shape {shape}, got {value.shape}')


def _check_range(name: str, value: np.ndarray, lo: int, hi: int) -> None:
    bad = (value < lo) | (value >= hi)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f'TokenSequence.{name}: element {i} is {value[i]}, outside [{lo}, {hi})')


def _field_tokens(key: str, value) -> tuple[np.ndarray, np.ndarray, tuple | None]:
    """(ids, is_text, (patches, rows, cols) or None) for one observation field."""
    if isinstance(value, str):
        ids = tokenize_text(value)
        return ids, np.ones(ids.shape, bool), None
    arr = np.asarray(value)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        patches, rows, cols = image_to_patches(arr)
        return np.full(len(patches), PATCH_PLACEHOLDER, np.int64), np.zeros(len(patches), bool), (patches, rows, cols)
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        ids = tokenize_discrete(arr).ravel()
    elif np.issubdtype(arr.dtype, np.floating):
        ids = tokenize_continuous(arr).ravel()
    else:
        raise TypeError(f"observation field '{key}': cannot tokenize {type(value).__name__} "
                        f'(dtype {arr.dtype}); expected str, uint8 (H, W, 3) image, float or integer array')
    return ids, np.zeros(ids.shape, bool), None


def tokenize_observation(observation: Mapping[str, object]) -> TokenSequence:
    """Observation tokens of one timestep (timestep 0), fields in lexicographic key order.

    str -> text (SentencePiece); uint8 (H, W, 3) -> image patches; floating array -> continuous (mu-law);
    integer/bool array -> discrete. Arrays are flattened row-major.
    """
    if not isinstance(observation, Mapping):
        raise TypeError(f'tokenize_observation: expected a mapping of field name -> value, '
                        f'got {type(observation).__name__}')
    for key in observation:
        if not isinstance(key, str):
            raise TypeError(f'tokenize_observation: field names must be str, got {key!r}')
    ids, text, images = [], [], []
    for key in sorted(observation):
        try:
            field_ids, field_text, image = _field_tokens(key, observation[key])
        except ValueError as exc:
            raise ValueError(f"observation field '{key}': {exc}") from None
        ids.append(field_ids)
        text.append(field_text)
        if image is not None:
            images.append(image)
    tokens = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    n = len(tokens)
    if n == 0:
        raise ValueError('tokenize_observation: the observation produced no tokens (a timestep needs at least one)')
    if n > LOCAL_POS_SIZE:
        raise ValueError(f'tokenize_observation: {n} observation tokens exceed the {LOCAL_POS_SIZE} local '
                         f'positions (fields: {", ".join(f"{k}={len(i)}" for k, i in zip(sorted(observation), ids))})')
    empty = TokenSequence.empty()
    return TokenSequence(
        tokens=tokens,
        patches=np.concatenate([im[0] for im in images]) if images else empty.patches,
        patch_rows=np.concatenate([im[1] for im in images]) if images else empty.patch_rows,
        patch_cols=np.concatenate([im[2] for im in images]) if images else empty.patch_cols,
        local_pos=np.arange(n, dtype=np.int64), loss_mask=np.concatenate(text), is_action=np.zeros(n, bool),
        timestep=np.zeros(n, np.int64))


def tokenize_action(action) -> np.ndarray:
    """Action values in [-1, 1] (flattened row-major) -> continuous ids, binned without mu-law."""
    values = np.asarray(action, dtype=np.float64).ravel()
    outside = np.abs(values) > 1.0 + 1e-6
    if outside.any():
        i = int(np.argmax(outside))
        raise ValueError(f'tokenize_action: element {i} is {values[i]}, outside [-1, 1] (normalise actions first)')
    return tokenize_continuous(values, mu_law=False)


def detokenize_action(ids) -> np.ndarray:
    """Continuous action ids -> values in [-1, 1] at the bin centres."""
    return detokenize_continuous(ids, mu_law=False)


def separator_and_actions(action_ids=()) -> TokenSequence:
    """'|' followed by the given action token ids, as one (continuing) timestep.

    The engine appends this after a timestep's observation; with no ids it is just the separator that
    precedes decoding. TokenSequence.concat joins it to the observation's timestep.
    """
    ids = np.asarray(action_ids, dtype=np.int64).ravel()
    bad = (ids < 0) | (ids >= SEPARATOR_ID)
    if bad.any():
        raise ValueError(f'separator_and_actions: action ids {ids[bad].tolist()[:8]} are not token ids in '
                         f'[0, {SEPARATOR_ID}) (continuous actions use [{CONTINUOUS_OFFSET}, '
                         f'{CONTINUOUS_OFFSET + NUM_BINS}))')
    n = len(ids) + 1
    is_action = np.arange(n) > 0
    return TokenSequence(
        tokens=np.concatenate([[SEPARATOR_ID], ids]).astype(np.int64), patches=TokenSequence.empty().patches,
        patch_rows=np.zeros((0, 2), np.int64), patch_cols=np.zeros((0, 2), np.int64),
        local_pos=np.full(n, NO_POS, np.int64), loss_mask=is_action.copy(), is_action=is_action,
        timestep=np.zeros(n, np.int64))


def tokenize_timestep(observation: Mapping[str, object], action) -> TokenSequence:
    """One full timestep: observation tokens, '|', action tokens (loss on text and actions only)."""
    action_ids = tokenize_action(action)
    if len(action_ids) == 0:
        raise ValueError('tokenize_timestep: the action is empty')
    return TokenSequence.concat([tokenize_observation(observation), separator_and_actions(action_ids)])


def tokenizer_config() -> dict:
    """The scheme as plain JSON, stored in a checkpoint's 'tokenizer' section (see check_tokenizer_config)."""
    return {'text_vocab_size': TEXT_VOCAB_SIZE, 'continuous_offset': CONTINUOUS_OFFSET, 'num_bins': NUM_BINS,
            'separator_id': SEPARATOR_ID, 'vocab_size': VOCAB_SIZE, 'mu': MU, 'm': M, 'patch_size': PATCH_SIZE,
            'pos_buckets': POS_BUCKETS, 'local_pos_size': LOCAL_POS_SIZE,
            'text_model_sha256': hashlib.sha256(MODEL_PATH.read_bytes()).hexdigest()}


def check_tokenizer_config(config: Mapping) -> None:
    """ValueError naming every field where a checkpoint's tokenizer differs from this code's."""
    ours = tokenizer_config()
    diffs = [f'{k}: checkpoint has {config.get(k)!r}, this code uses {v!r}'
             for k, v in ours.items() if config.get(k) != v]
    if diffs:
        raise ValueError('tokenizer config mismatch: ' + '; '.join(diffs))
