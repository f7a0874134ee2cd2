"""Engine benchmark: one Gato control step of the docs/design.md §7 layout, random weights.

Layout: 2 cameras at 64x64 (32 patches) + 15 proprio values + '|', 7 action tokens, with 5 past timesteps
already in the cache. Each measured step starts from exactly that cache (reset with the 5 past timesteps as
the prompt, untimed), so no step includes an eviction. Compares the KV engine with the naive path that
recomputes the whole window with the plain forward for every action token. Also times the steady state of
a long episode: a full 1024-token window where every step must evict one timestep, with the exact
eviction (re-prefill of the kept window) and with eviction='shift'.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import numpy as np
import torch

from gato_ros.core.engine import EngineConfig, GatoEngine
from gato_ros.core.model import PRESETS, Gato
from gato_ros.core.tokenizer import TokenSequence, tokenize_observation, tokenize_timestep

CAMERAS, IMAGE_SIZE, PROPRIO, ACTIONS, PAST = ('front_left', 'front_right'), 64, 15, 7, 5


def _observation(rng: np.random.Generator) -> dict:
    obs = {f'image_{c}': rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8) for c in CAMERAS}
    obs['proprio'] = rng.normal(size=PROPRIO).astype(np.float32)
    return obs


def _measure(engine: GatoEngine, history: TokenSequence, observation: TokenSequence, warmup: int, steps: int):
    for i in range(warmup + steps):
        if i == warmup:
            engine.latencies.clear()
        engine.reset(prompt=history)
        engine.step(observation)
    return engine.stats()


def _measure_evicting(engine: GatoEngine, observations: list[TokenSequence], steps: int):
    """Steps on a full window (no prompt), each evicting the oldest timestep."""
    engine.reset()
    for i, observation in enumerate(observations):
        if engine.step(observation).evicted:
            break
    else:
        raise RuntimeError('the observations never filled the window')
    engine.latencies.clear()
    for k in range(steps):
        assert engine.step(observations[(i + 1 + k) % len(observations)]).evicted == 1
    return engine.stats()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='gato-ros bench engine', description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='tiny', choices=sorted(PRESETS))
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (default cpu)")
    parser.add_argument('--dtype', choices=('fp32', 'bf16'), default=None, help='default: bf16 on CUDA, fp32 on CPU')
    parser.add_argument('--steps', type=int, default=50, help='measured KV steps (after warm-up)')
    parser.add_argument('--naive-steps', type=int, default=3, help='measured naive recompute steps (0 = skip)')
    parser.add_argument('--warmup', type=int, default=None, help='unmeasured steps first (default 3, 5 with --compile)')
    parser.add_argument('--evict-steps', type=int, default=3, help='measured steps on a full window (0 = skip)')
    parser.add_argument('--compile', action='store_true', help='torch.compile the decode step')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--json', action='store_true', help='print one JSON object as the last stdout line')
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error('--steps must be >= 1')
    if args.threads:
        torch.set_num_threads(args.threads)
    warmup = args.warmup if args.warmup is not None else (5 if args.compile else 3)

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = Gato(PRESETS[args.preset])
    params = model.num_params()['total']
    history = TokenSequence.concat([tokenize_timestep(_observation(rng), rng.uniform(-1, 1, ACTIONS))
                                    for _ in range(PAST)])
    observation = tokenize_observation(_observation(rng))
    config = EngineConfig(action_dim=ACTIONS, device=args.device, dtype=args.dtype, compile=args.compile)
    kv = _measure(GatoEngine(model, config), history, observation, warmup, args.steps)
    naive = None
    if args.naive_steps:
        naive_engine = GatoEngine(model, EngineConfig(action_dim=ACTIONS, device=args.device, dtype=args.dtype,
                                                      use_kv_cache=False))
        naive = _measure(naive_engine, history, observation, 1, args.naive_steps)
    evict = {}
    if args.evict_steps:
        observations = [tokenize_observation(_observation(rng)) for _ in range(model.config.context // PAST)]
        for mode in ('recompute', 'shift'):
            engine = GatoEngine(model, dataclasses.replace(config, eviction=mode))
            evict[mode] = _measure_evicting(engine, observations, args.evict_steps)['p50_ms']
    result = {
        'preset': args.preset, 'params': params, 'device': args.device,
        'dtype': {torch.float32: 'fp32', torch.bfloat16: 'bf16'}[config.torch_dtype],
        'compile': args.compile, 'steps': args.steps, 'step_ms_p50': round(kv['p50_ms'], 3),
        'step_ms_p99': round(kv['p99_ms'], 3), 'step_ms_max': round(kv['max_ms'], 3),
        'naive_steps': args.naive_steps,
        'naive_step_ms_p50': round(naive['p50_ms'], 3) if naive else None,
        'kv_speedup': round(naive['p50_ms'] / kv['p50_ms'], 2) if naive else None,
        'evict_step_ms_p50': round(evict['recompute'], 3) if evict else None,
        'shift_evict_step_ms_p50': round(evict['shift'], 3) if evict else None,
        'tokens_per_step': len(observation) + 1 + ACTIONS, 'context_tokens': len(history),
        'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
    }
    print(f"engine bench: {args.preset} ({params / 1e6:.1f}M params) on {args.device} {result['dtype']}"
          f"{' +compile' if args.compile else ''}, {torch.get_num_threads()} threads; {PAST} past timesteps "
          f"({len(history)} tokens) + {result['tokens_per_step']} new tokens per step")
    print(f"  KV engine: p50 {result['step_ms_p50']:.1f} ms  p99 {result['step_ms_p99']:.1f} ms  "
          f"over {args.steps} steps")
    if naive:
        print(f"  naive recompute: p50 {result['naive_step_ms_p50']:.1f} ms over {args.naive_steps} steps "
              f"-> KV speedup x{result['kv_speedup']:.1f}")
    if evict:
        print(f"  full 1024-token window, evicting every step: exact {evict['recompute']:.1f} ms, "
              f"shift {evict['shift']:.1f} ms (p50 over {args.evict_steps} steps)")
    if args.json:
        print(json.dumps(result))
    return 0
