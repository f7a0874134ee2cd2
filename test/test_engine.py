"""KV-cache engine: parity with the plain forward across evictions (full attention and the ring buffer of an
attention window), prompt, sampling, bf16/int8/compile/CUDA tolerances, errors."""

import copy
import dataclasses

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
    for bad, match in ((dict(attention_window=-1), 'attention_window must be >= 0'),
                       (dict(quantize='int4'), "quantize must be None or 'int8'"),
                       (dict(threads=0), 'threads must be >= 1')):
        with pytest.raises(ValueError, match=match):
            EngineConfig(**bad)
    with pytest.raises(ValueError, match='attention window 80 exceeds max_context 64'):
        _engine(model, max_context=64, attention_window=80)
    with pytest.raises(ValueError, match='use_kv_cache=False is the full-attention reference'):
        _engine(model, attention_window=8, use_kv_cache=False)
    with pytest.raises(ValueError, match='runs on CPU only'):
        _engine(model, quantize='int8', dtype='bf16', device='cuda')
    with pytest.raises(ValueError, match='prompt of 12 tokens plus attention window 30 does not fit max_context 40'):
        _engine(model, max_context=40, attention_window=30).reset(timestep)
    with pytest.raises(ValueError, match='attention_window must be >= 0'):
        GatoConfig(attention_window=-2)


def _prefill_sizes(engine):
    """Record the number of tokens of every prefill pass the engine runs."""
    sizes, run = [], engine._prefill_pass
    engine._prefill_pass = lambda x, *rest: (sizes.append(x.shape[1]), run(x, *rest))[1]
    return sizes


@pytest.mark.parametrize('max_context', [40, 30])   # 30: a ring of 18 slots, so each prefill runs in 3 chunks
def test_ring_buffer_matches_the_plain_forward_with_the_window_mask(model, max_context):
    W = 16
    windowed = Gato(dataclasses.replace(MICRO, attention_window=W, context=512))
    windowed.load_state_dict(model.state_dict())
    rng = np.random.default_rng(5)
    prompt = tokenize_timestep(_obs(rng), rng.uniform(-1, 1, A))                     # 12 tokens, always in view
    engine = GatoEngine(windowed, EngineConfig(action_dim=A, max_context=max_context))
    override = _engine(model, max_context=max_context, attention_window=W)      # same window set by the engine
    engine.reset(prompt), override.reset(prompt)
    sizes = _prefill_sizes(engine)
    episode, evicted = [prompt], 0
    for step in range(12):   # 156 tokens: the 28- or 18-slot ring wraps many times
        obs = tokenize_observation(_obs(rng))
        got = engine.step(obs)
        np.testing.assert_array_equal(got.action_ids, override.step(obs).action_ids)
        evicted += got.evicted
        episode.append(engine.timesteps[-1])
        whole = TokenSequence.concat(episode)
        logits, _ = windowed(**sequence_tensors(whole), rows=ROWS, sinks=len(prompt))
        full = logits[0, len(whole) - A - 1:len(whole) - 1]
        torch.testing.assert_close(got.logits, full, rtol=1e-4, atol=1e-4 * full.abs().max().item())
        np.testing.assert_array_equal(got.action_ids, full.argmax(-1).numpy() + CONTINUOUS_OFFSET)
        assert engine.length <= max_context and engine.window().tokens[:12].tolist() == prompt.tokens.tolist()
    chunk = max_context - len(prompt) - W + 1
    assert sizes == [min(chunk, 9 - i) for _ in range(12) for i in range(0, 9, chunk)]   # never a re-prefill
    assert evicted >= 9


def test_a_one_timestep_window_prefills_only_the_new_step(model):
    rng = np.random.default_rng(6)
    engine, ref = _engine(model, max_context=13), _engine(model, max_context=13, use_kv_cache=False)
    sizes = _prefill_sizes(engine)
    for step in range(4):   # 12 tokens a step: each drops the whole previous one
        obs = tokenize_observation(_obs(rng))
        got, want = engine.step(obs), ref.step(obs)
        assert got.evicted == (step > 0)
        torch.testing.assert_close(got.logits, want.logits, rtol=1e-4, atol=1e-4 * want.logits.abs().max().item())
    assert sizes == [9] * 4


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return ((got.float() - want).norm() / want.norm()).item()


@pytest.mark.parametrize('options', [dict(dtype='bf16'), dict(quantize='int8', dtype='bf16')])
def test_reduced_precision_tracks_fp32(options):
    # Initial-scale weights: the fixture's sharpened ones turn any rounding into another argmax.
    torch.manual_seed(1)
    model = Gato(MICRO)
    rng = np.random.default_rng(7)
    reference = _engine(model, max_context=64)
    fast = GatoEngine(copy.deepcopy(model), EngineConfig(action_dim=A, max_context=64, **options))   # casts in place
    errors = []
    for _ in range(6):   # past an eviction
        obs = tokenize_observation(_obs(rng))
        a, b = reference.step(obs), fast.step(obs)
        errors.append(_relative_error(b.logits, a.logits))
    assert 0 < max(errors) < 0.02   # not exact (the option did something), but close (measured: 0.3-0.7%)


@pytest.mark.slow
@pytest.mark.parametrize('attention_window', [0, 16])
def test_compiled_prefill_and_decode_match_eager(model, attention_window):
    rng = np.random.default_rng(4)
    eager = _engine(model, max_context=64, attention_window=attention_window)
    compiled = _engine(model, max_context=64, attention_window=attention_window, compile=True)
    for _ in range(8):   # past an eviction / a wrap of the ring
        obs = tokenize_observation(_obs(rng))
        a, b = eager.step(obs), compiled.step(obs)
        np.testing.assert_array_equal(a.action_ids, b.action_ids)
        torch.testing.assert_close(a.logits, b.logits, rtol=1e-4, atol=1e-4 * a.logits.abs().max().item())


def test_threads_sets_torch_intra_op_threads(model):
    before = torch.get_num_threads()
    try:
        _engine(model, threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')
@pytest.mark.parametrize('compile', [False, True])   # True: CUDA graphs for the decode (mode reduce-overhead)
@pytest.mark.parametrize('attention_window', [0, 16])
def test_cuda_bf16_tracks_cpu_fp32(compile, attention_window):
    torch.manual_seed(1)
    model = Gato(MICRO)
    rng = np.random.default_rng(8)
    options = dict(action_dim=A, max_context=64, attention_window=attention_window)
    cpu = GatoEngine(copy.deepcopy(model), EngineConfig(**options))
    cuda = GatoEngine(model, EngineConfig(device='cuda', compile=compile, **options))   # bf16 by default on CUDA
    assert cuda.dtype == torch.bfloat16
    for _ in range(8):
        obs = tokenize_observation(_obs(rng))
        a, b = cpu.step(obs), cuda.step(obs)
        assert b.logits.device.type == 'cuda'
        assert _relative_error(b.logits.cpu(), a.logits) < 0.02


def test_slot_action_inputs_kv_path_matches_full_recompute_across_evictions():
    """The KV decode feeds each action token's index under 'slot' inputs, as the plain forward embeds it."""
    torch.manual_seed(1)
    model = Gato(dataclasses.replace(MICRO, action_inputs='slot'))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim > 1 and 'patch_embed' not in name:
                p.mul_(10)
    rng = np.random.default_rng(1)
    kv, ref = _engine(model, max_context=40), _engine(model, max_context=40, use_kv_cache=False)
    for step in range(6):     # 12 tokens a step, 40 slots: evictions from the fourth step on
        obs = tokenize_observation(_obs(rng))
        got, want = kv.step(obs), ref.step(obs)
        np.testing.assert_array_equal(got.action_ids, want.action_ids)
        torch.testing.assert_close(got.logits, want.logits, rtol=1e-4, atol=1e-4 * want.logits.abs().max().item())
    assert len(kv.timesteps) == 3
