"""KV-cache engine: parity with the plain forward across sliding-window evictions, prompt, sampling, errors."""

import numpy as np
import pytest
import torch

from gato_ros.core.engine import EngineConfig, GatoEngine
from gato_ros.core.model import Gato, GatoConfig, sequence_tensors
from gato_ros.core.tokenizer import CONTINUOUS_OFFSET, NUM_BINS, TokenSequence, tokenize_observation, tokenize_timestep

MICRO = GatoConfig(n_layer=2, d_model=64, n_head=2, head_dim=32, d_ff=128, patch_channels=32)
A = 3
ROWS = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS)


def _obs(rng):
    return {'image_cam': rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),     # 4 patches
            'proprio': rng.normal(size=4).astype(np.float32)}                       # + 4 = 8 obs tokens


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    model = Gato(MICRO)
    with torch.no_grad():   # larger than the 0.02 init: sharp logits and strong mixing across timesteps,
        for name, p in model.named_parameters():   # so neither argmax ties nor a tiny attention can hide a bug
            if p.ndim > 1 and 'patch_embed' not in name:
                p.mul_(10)
    return model


def _engine(model, **kw):
    return GatoEngine(model, EngineConfig(action_dim=A, **kw))


def test_kv_path_matches_full_recompute_across_evictions(model):
    rng = np.random.default_rng(0)
    prompt = TokenSequence.concat([tokenize_timestep(_obs(rng), rng.uniform(-1, 1, A)) for _ in range(2)])
    # prompt 24 tokens + 12 per step; 64 slots hold the prompt and 3 steps, so evictions start at step 4.
    kv, ref = _engine(model, max_context=64), _engine(model, max_context=64, use_kv_cache=False)
    kv.reset(prompt), ref.reset(prompt)
    evictions = 0
    for step in range(9):
        obs = tokenize_observation(_obs(rng))
        got, want = kv.step(obs), ref.step(obs)
        evictions += got.evicted
        assert got.evicted == want.evicted
        np.testing.assert_array_equal(got.action_ids, want.action_ids)
        torch.testing.assert_close(got.logits, want.logits, rtol=1e-4, atol=1e-4 * want.logits.abs().max().item())
        # Independently: the plain forward over the window now cached (prompt, kept steps, this step).
        window = kv.window()
        assert window.tokens[:len(prompt)].tolist() == prompt.tokens.tolist()   # the prompt is never evicted
        assert len(window) == kv.length <= 64
        logits, _ = model(**sequence_tensors(window), rows=ROWS)
        full = logits[0, len(window) - A - 1:len(window) - 1]     # at '|' and the first A-1 action tokens
        torch.testing.assert_close(got.logits, full, rtol=1e-4, atol=1e-4 * full.abs().max().item())
        np.testing.assert_array_equal(got.action_ids, full.argmax(-1).numpy() + CONTINUOUS_OFFSET)
        assert np.all(np.abs(got.action) <= 1.0)
    assert evictions >= 5 and len(kv.timesteps) == 3


def test_shift_eviction_is_bounded_and_exact_until_the_first_eviction(model):
    rng = np.random.default_rng(1)
    exact, shift = _engine(model, max_context=40), _engine(model, max_context=40, eviction='shift')
    for step in range(6):
        obs = tokenize_observation(_obs(rng))
        a, b = exact.step(obs), shift.step(obs)
        if step < 3:
            torch.testing.assert_close(a.logits, b.logits)
        assert shift.length <= 40 and shift.length == exact.length


def test_reset_clears_the_episode_and_sampling_is_seeded(model):
    rng = np.random.default_rng(2)
    observations = [tokenize_observation(_obs(rng)) for _ in range(3)]
    engine = _engine(model, temperature=1.0, seed=7)
    first = [engine.step(o).action_ids for o in observations]
    engine.reset()
    assert engine.length == 0 and len(engine.window()) == 0
    assert np.array_equal(first, [engine.step(o).action_ids for o in observations])
    other = _engine(model, temperature=1.0, seed=8)
    assert not np.array_equal(first, [other.step(o).action_ids for o in observations])
    stats = engine.stats()
    assert stats['count'] == 6 and 0 < stats['p50_ms'] <= stats['p99_ms'] <= stats['max_ms']


def test_errors_name_the_problem(model):
    rng = np.random.default_rng(3)
    timestep = tokenize_timestep(_obs(rng), np.zeros(A))
    engine = _engine(model, max_context=16)
    with pytest.raises(ValueError, match='observation tokens only'):
        engine.step(timestep)
    with pytest.raises(ValueError, match='prompt of 24 tokens does not fit max_context 16'):
        engine.reset(TokenSequence.concat([timestep] * 2))
    engine = _engine(model, max_context=20)
    engine.reset(timestep)
    with pytest.raises(ValueError, match=r'one step \(12 tokens\) plus the prompt \(12\) exceeds max_context 20'):
        engine.step(tokenize_observation(_obs(rng)))
    with pytest.raises(ValueError, match='max_context'):
        EngineConfig(max_context=1)
    with pytest.raises(ValueError, match='eviction'):
        EngineConfig(eviction='drop')
    with pytest.raises(ValueError, match='exceeds the model context'):
        _engine(model, max_context=4096)


@pytest.mark.slow
def test_compiled_decode_matches_eager(model):
    rng = np.random.default_rng(4)
    eager, compiled = _engine(model, max_context=64), _engine(model, max_context=64, compile=True)
    for _ in range(6):   # past an eviction
        obs = tokenize_observation(_obs(rng))
        a, b = eager.step(obs), compiled.step(obs)
        np.testing.assert_array_equal(a.action_ids, b.action_ids)
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-4 * a.logits.abs().max().item())
