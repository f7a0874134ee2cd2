"""Engine benchmark: Gato control steps of the docs/design.md §7 layout, random weights, against this machine's limit.

Layout: 2 cameras at 64x64 (32 patches) + 15 proprio values + '|', 5 action tokens (53 tokens a timestep).

- The headline is the STEADY STATE, the step a long episode sees once the window is full and every step evicts
  the oldest timestep, in two windows:
  one_timestep  the shipped policy's window (checkpoints/gato-stack: one timestep + 1 token), where each
                step drops the whole previous timestep;
  window_1024   Gato's 1024-token window with a sliding attention window (the ring buffer: exact and constant
                time; attention_window = 1024 - prefill tokens + 1, so a prefill is one pass), beside the
                full-attention model's exact eviction (re-prefill of the kept window) and eviction='shift'.
- Today's step: 5 past timesteps in the cache (reset with them as the prompt, untimed), no eviction, and the
  naive path that recomputes the whole window with the plain forward for every action token.
- The machine's limit, probed in the same run: matmul GFLOP/s (fp32, bf16) and memory copy GB/s. A step's lower
  bound sums, over its passes (one prefill, one decode per action), max(FLOPs / peak, bytes moved / bandwidth);
  bound_fraction = bound / measured p50 (1.0 = at the limit).
- --variants also times the steady steps for each CPU lever (dtype, int8 weights, torch.compile, threads) in the
  same process, so their ratios are comparable, and names the fastest.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import torch

from gato_ros.benchmarks import OneLineParser
from gato_ros.core.engine import EngineConfig, GatoEngine
from gato_ros.core.model import PRESETS, Gato, GatoConfig
from gato_ros.core.tokenizer import NUM_BINS, TokenSequence, tokenize_observation, tokenize_timestep

CAMERAS, IMAGE_SIZE, PROPRIO, ACTIONS, PAST = ('front_left', 'front_right'), 64, 15, 5, 5
GATO_WINDOW = 1024
VARIANTS = {   # name -> EngineConfig fields; each is timed in the steady state by --variants
    'fp32': dict(dtype='fp32'),
    'bf16': dict(dtype='bf16'),
    'bf16_int8': dict(dtype='bf16', quantize='int8'),
    'fp32_compile': dict(dtype='fp32', compile=True),
    'bf16_compile': dict(dtype='bf16', compile=True),
    'bf16_int8_compile': dict(dtype='bf16', quantize='int8', compile=True),
    'bf16_int8_1thread': dict(dtype='bf16', quantize='int8', threads=1),
}


def random_observation(rng: np.random.Generator) -> dict:
    obs = {f'image_{c}': rng.integers(0, 256, (IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8) for c in CAMERAS}
    obs['proprio'] = rng.normal(size=PROPRIO).astype(np.float32)
    return obs


# ---- the machine's limit ---------------------------------------------------------------------------------------
def _best_seconds(fn, device: torch.device, budget_s: float) -> float:
    """Fastest of repeated calls of fn within about budget_s (after one warm-up call)."""
    sync = torch.cuda.synchronize if device.type == 'cuda' else (lambda: None)
    fn()
    sync()
    best, deadline = float('inf'), time.perf_counter() + budget_s
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def probe_machine(device: torch.device, budget_s: float = 0.5) -> dict:
    """Peak matmul GFLOP/s (fp32, bf16) and memory copy GB/s that torch reaches here, now."""
    n = 4096 if device.type == 'cuda' else 1024
    result = {}
    for name, dtype in (('fp32', torch.float32), ('bf16', torch.bfloat16)):
        a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
        result[f'matmul_gflops_{name}'] = round(2 * n ** 3 / _best_seconds(lambda: a @ b, device, budget_s) / 1e9, 1)
    src = torch.empty(64 * 2 ** 20, device=device)        # 256 MiB: far past the caches
    dst = torch.empty_like(src)
    seconds = _best_seconds(lambda: dst.copy_(src), device, budget_s)
    result['memory_gbps'] = round(2 * src.numel() * src.element_size() / seconds / 1e9, 1)   # read + write
    return result


def step_passes(cfg: GatoConfig, prefill: int, patches: int, actions: int, cached: int, weight_bytes: int,
                decode_weight_bytes: int, cache_bytes: int) -> list[tuple[float, float]]:
    """(FLOPs, bytes) of each pass of one step: the prefill of `prefill` tokens (`patches` of them image patches)
    then `actions` single-token decodes, after `cached` tokens already in the cache (each attended to)."""
    d, L, inner, ff = cfg.d_model, cfg.n_layer, cfg.n_head * cfg.head_dim, cfg.d_ff
    layer_weights = d * 3 * inner + inner * d + d * 2 * ff + ff * d
    weights = L * layer_weights + NUM_BINS * d                                      # + the scored head rows
    c, side = cfg.patch_channels, cfg.patch_size // 2
    patch_weights = 3 * 16 * c + 2 * 9 * c * c + c * side * side * d               # stem, two 3x3 convs, projection
    passes = []
    for a in range(actions + 1):
        t = prefill if a == 0 else 1
        keys = cached + (prefill + a - 1 if a else 0)                               # keys before this pass
        attended = t * keys + t * (t + 1) / 2                                       # causal within the pass
        flops = 2 * t * L * layer_weights + 4 * L * attended * inner + 2 * NUM_BINS * d
        moved = weights * (decode_weight_bytes if a else weight_bytes) + 2 * L * (keys + t) * inner * cache_bytes
        if a == 0:
            flops += 2 * patches * side * side * (3 * 16 * c + 2 * 9 * c * c) + 2 * patches * c * side * side * d
            moved += patch_weights * weight_bytes
        passes.append((flops, moved))
    return passes


def lower_bound_ms(passes, gflops: float, gbps: float) -> float:
    return 1e3 * sum(max(f / (gflops * 1e9), b / (gbps * 1e9)) for f, b in passes)


# ---- timing ----------------------------------------------------------------------------------------------------
def _measure(engine: GatoEngine, history: TokenSequence, observation: TokenSequence, warmup: int, steps: int):
    for i in range(warmup + steps):
        if i == warmup:
            engine.latencies.clear()
        engine.reset(prompt=history)
        engine.step(observation)
    return engine.stats()


def step_engine(engine: GatoEngine, observation: TokenSequence):
    """engine.step under its own thread count (process-wide in torch, so set around the step, untimed)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(engine.config.threads or threads)
    try:
        return engine.step(observation)
    finally:
        torch.set_num_threads(threads)


def measure_steady(engines: dict, observations: list[TokenSequence], warmup: int, steps: int) -> dict:
    """Steps on a full window (no prompt), each evicting the oldest timestep, after `warmup` such steps. The
    engines take turns step by step, so a load that comes and goes on this machine disturbs them alike."""
    for engine in engines.values():
        engine.reset()
        i = 0
        while not step_engine(engine, observations[i % len(observations)]).evicted:
            i += 1
            if i > engine.max_context:
                raise RuntimeError('the observations never filled the window')
    for k in range(warmup + steps):
        for engine in engines.values():
            if k == warmup:
                engine.latencies.clear()
            if step_engine(engine, observations[k % len(observations)]).evicted != 1:
                raise RuntimeError('a steady-state step did not evict exactly one timestep')
    return {name: engine.stats() for name, engine in engines.items()}


def steady_engines(model: Gato, base: EngineConfig, per_step: int) -> dict[str, GatoEngine]:
    """The one-timestep window and the 1024-token ring, sharing `model`."""
    ring = GATO_WINDOW - (per_step - base.action_dim) + 1            # a step's prefill stays one pass
    return {'steady_one_timestep': GatoEngine(model, dataclasses.replace(base, max_context=per_step + 1,
                                                                          attention_window=0)),
            'steady_1024': GatoEngine(model, dataclasses.replace(base, max_context=GATO_WINDOW, attention_window=ring))}


def _ms(stats: dict, prefix: str) -> dict:
    return {f'{prefix}_ms_{k}': stats[f'{k}_ms'] for k in ('p50', 'p99', 'max')}


def _bounds(cfg: GatoConfig, result: dict, config: EngineConfig, machine: dict, observation) -> dict:
    """Lower bound and fraction achieved of each steady-state step in `result` (engine `config`)."""
    dtype = 'bf16' if config.torch_dtype == torch.bfloat16 else 'fp32'
    act_bytes = 2 if dtype == 'bf16' else 4
    decode_weight_bytes = 1 if config.quantize == 'int8' else act_bytes             # int8: the decodes only
    prefill, patches = len(observation) + 1, int((observation.tokens < 0).sum())
    per_step = prefill + config.action_dim
    out = {}
    for name, cached in (('steady_one_timestep', 0), ('steady_1024', GATO_WINDOW - per_step)):
        passes = step_passes(cfg, prefill, patches, config.action_dim, cached, act_bytes, decode_weight_bytes,
                             act_bytes)
        bound = lower_bound_ms(passes, machine[f'matmul_gflops_{dtype}'], machine['memory_gbps'])
        out[f'{name}_bound_ms'] = round(bound, 3)
        out[f'{name}_bound_fraction'] = round(bound / result[f'{name}_ms_p50'], 3)
    return out


def main(argv=None) -> int:
    parser = OneLineParser(prog='gato-ros bench engine', description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='tiny', choices=sorted(PRESETS))
    parser.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (default cpu)")
    parser.add_argument('--dtype', choices=('fp32', 'bf16'), default=None, help='default: bf16 on CUDA, fp32 on CPU')
    parser.add_argument('--quantize', choices=('int8',), default=None,
                        help='int8 weights for the decode passes (CPU, with --dtype bf16)')
    parser.add_argument('--steps', type=int, default=30, help='measured steps of each kind (after warm-up)')
    parser.add_argument('--naive-steps', type=int, default=3, help='measured naive recompute steps (0 = skip)')
    parser.add_argument('--warmup', type=int, default=None, help='unmeasured steps first (default 3, 5 with --compile)')
    parser.add_argument('--evict-steps', type=int, default=3,
                        help="measured steps of the full-attention 1024 window's recompute/shift evictions (0 = skip)")
    parser.add_argument('--compile', action='store_true', help='torch.compile prefill and decode')
    parser.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch default)')
    parser.add_argument('--variants', nargs='*', default=None, choices=sorted(VARIANTS), metavar='NAME',
                        help=f'also time the steady state of these variants (none named = all: {", ".join(VARIANTS)})')
    parser.add_argument('--json', action='store_true', help='print one JSON object as the last stdout line')
    args = parser.parse_args(argv)
    for name in ('steps', 'threads'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            parser.error(f'--{name} must be >= 1')
    for name in ('naive_steps', 'evict_steps', 'warmup'):
        if getattr(args, name) is not None and getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be >= 0")
    try:
        device = torch.device(args.device)
        config = EngineConfig(action_dim=ACTIONS, device=args.device, dtype=args.dtype, compile=args.compile,
                              quantize=args.quantize, threads=args.threads)
    except (RuntimeError, ValueError) as exc:
        parser.error(str(exc))
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available')
    if config.quantize and device.type != 'cpu':
        parser.error('--quantize int8 runs on CPU only')
    warmup = args.warmup if args.warmup is not None else (5 if args.compile else 3)
    if config.threads:
        torch.set_num_threads(config.threads)

    machine = probe_machine(device)
    rng = np.random.default_rng(0)

    def model() -> Gato:   # the same random weights every time (each engine takes over its model)
        torch.manual_seed(0)
        return Gato(PRESETS[args.preset])

    cfg = PRESETS[args.preset]
    history = TokenSequence.concat([tokenize_timestep(random_observation(rng), rng.uniform(-1, 1, ACTIONS))
                                    for _ in range(PAST)])
    observation = tokenize_observation(random_observation(rng))
    observations = [tokenize_observation(random_observation(rng)) for _ in range(8)]
    kv = _measure(GatoEngine(model(), config), history, observation, warmup, args.steps)
    naive = None
    if args.naive_steps:
        naive_engine = GatoEngine(model(), dataclasses.replace(config, use_kv_cache=False, compile=False))
        naive = _measure(naive_engine, history, observation, 1, args.naive_steps)
    per_step = len(observation) + 1 + ACTIONS
    engines = steady_engines(model(), config, per_step)
    steady = {}
    for name, stats in measure_steady(engines, observations, warmup, args.steps).items():
        steady.update(_ms(stats, name))
    steady['steady_1024_attention_window'] = engines['steady_1024'].attention_window
    if args.evict_steps:   # the full-attention model's 1024 window, for comparison
        full = model()
        engines = {mode: GatoEngine(full, dataclasses.replace(config, max_context=GATO_WINDOW, eviction=mode))
                   for mode in ('recompute', 'shift')}
        for mode, stats in measure_steady(engines, observations, 0, args.evict_steps).items():
            steady[f'steady_1024_full_{mode}_ms_p50'] = stats['p50_ms']
    with torch.device('meta'):
        params = Gato(cfg).num_params()['total']
    result = {
        'preset': args.preset, 'params': params, 'device': args.device,
        'dtype': {torch.float32: 'fp32', torch.bfloat16: 'bf16'}[config.torch_dtype], 'quantize': config.quantize,
        'compile': args.compile, 'steps': args.steps, 'tokens_per_step': len(observation) + 1 + ACTIONS,
        **steady, **_bounds(cfg, steady, config, machine, observation), 'machine': machine,
        'step_ms_p50': kv['p50_ms'], 'step_ms_p99': kv['p99_ms'], 'step_ms_max': kv['max_ms'],
        'context_tokens': len(history), 'naive_steps': args.naive_steps,
        'naive_step_ms_p50': naive['p50_ms'] if naive else None,
        'kv_speedup': round(naive['p50_ms'] / kv['p50_ms'], 2) if naive else None,
        'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
    }
    if args.variants is not None:
        chosen = args.variants or [v for v in VARIANTS if device.type == 'cpu' or 'quantize' not in VARIANTS[v]]
        threads, engines = torch.get_num_threads(), {}
        for name in chosen:
            vconfig = dataclasses.replace(config, **{'threads': None, 'quantize': None, 'compile': False,
                                                     **VARIANTS[name]})
            engines.update({(name, window): engine
                            for window, engine in steady_engines(model(), vconfig, per_step).items()})
            torch.set_num_threads(threads)   # an engine with `threads` set it for the process
        timed = measure_steady(engines, observations, 5, args.steps)
        variants = {name: {} for name in chosen}
        for (name, window), stats in timed.items():
            variants[name].update(_ms(stats, window))
        for name in chosen:
            variants[name].update(_bounds(cfg, variants[name], engines[name, 'steady_1024'].config, machine,
                                          observation))
        result['variants'] = variants
        result['fastest_variant'] = min(variants, key=lambda v: variants[v]['steady_one_timestep_ms_p50']
                                        + variants[v]['steady_1024_ms_p50'])
    _print(result)
    if args.json:
        print(json.dumps(result))
    return 0


def _print(r: dict) -> None:
    print(f"engine bench: {r['preset']} on {r['device']} {r['dtype']}{' int8' if r['quantize'] else ''}"
          f"{' +compile' if r['compile'] else ''}, {r['torch_threads']} threads, {r['tokens_per_step']} tokens a step; "
          f"machine: {r['machine']}")
    for name, what in (('steady_one_timestep', 'one-timestep window'), ('steady_1024', '1024-token ring')):
        print(f"  steady state, {what}: p50 {r[f'{name}_ms_p50']:.1f}  p99 {r[f'{name}_ms_p99']:.1f}  "
              f"max {r[f'{name}_ms_max']:.1f} ms; lower bound {r[f'{name}_bound_ms']:.2f} ms "
              f"({100 * r[f'{name}_bound_fraction']:.0f}% of it reached)")
    if 'steady_1024_full_recompute_ms_p50' in r:
        print(f"  full attention, 1024 window, evicting: exact {r['steady_1024_full_recompute_ms_p50']:.1f} ms, "
              f"shift {r['steady_1024_full_shift_ms_p50']:.1f} ms (p50)")
    print(f"  {PAST} past timesteps, no eviction: p50 {r['step_ms_p50']:.1f} ms  p99 {r['step_ms_p99']:.1f} ms"
          + (f"; naive recompute p50 {r['naive_step_ms_p50']:.1f} ms (KV x{r['kv_speedup']:.1f})"
             if r['naive_step_ms_p50'] else ''))
    for name, v in r.get('variants', {}).items():
        print(f"  variant {name:18s} one-timestep p50/p99 {v['steady_one_timestep_ms_p50']:6.1f} / "
              f"{v['steady_one_timestep_ms_p99']:6.1f} ms   1024 ring p50/p99 {v['steady_1024_ms_p50']:6.1f} / "
              f"{v['steady_1024_ms_p99']:6.1f} ms")
    if 'fastest_variant' in r:
        print(f"  fastest: {r['fastest_variant']}")
