"""Training throughput benchmark: timesteps per second of the behaviour-cloning step, as `gato-ros train` runs it.

Synthetic UR5e episodes with the real observation layout (two 64x64 cameras, 12 proprio values, 5 actions,
block poses), one timestep per sequence (context 51), batch 32 by default. Each variant is one setting of the
levers the learning recipe pulls; all variants run in the same process, so their ratios are comparable:

  baseline     whole-vocabulary head, one-hot targets, foreach AdamW, fp32  (the trainer before the recipe)
  fused        + fused AdamW (one kernel over all parameters, incl. the 33025 x d embedding)
  action_head  + scoring only the 1024 action bins
  recipe       + HL-Gauss targets and the auxiliary block head (what the recipe trains)
  recipe_bf16  + bfloat16 autocast

A step = tokenize and collate the batch (the DataLoader's work), forward, backward, optimizer step.
"""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import torch

from gato_ros.benchmarks import OneLineParser
from gato_ros.core.data.dataset import DatasetConfig, EpisodeDataset, collate
from gato_ros.core.data.mcap_io import BLOCK_ORDER, Episode, EpisodeInfo
from gato_ros.core.model import PRESETS, Gato
from gato_ros.core.robots import load_profile
from gato_ros.core.train.trainer import BehaviourCloningLoss, TrainConfig, optimizer_for

VARIANTS = {
    'baseline': dict(fused=False, action_head=False, label_sigma=0.0, aux_weight=0.0, bf16=False),
    'fused': dict(fused=True, action_head=False, label_sigma=0.0, aux_weight=0.0, bf16=False),
    'action_head': dict(fused=True, action_head=True, label_sigma=0.0, aux_weight=0.0, bf16=False),
    'recipe': dict(fused=True, action_head=True, label_sigma=0.02, aux_weight=1.0, bf16=False),
    'recipe_bf16': dict(fused=True, action_head=True, label_sigma=0.02, aux_weight=1.0, bf16=True),
}


def synthetic_episodes(count: int, steps: int, seed: int = 0) -> list[Episode]:
    profile = load_profile('ur5e')
    rng = np.random.default_rng(seed)
    cameras = ('front_left', 'front_right')
    episodes = []
    for i in range(count):
        info = EpisodeInfo(robot='ur5e', task=('red', 'blue'), seed=i, success=True, control_hz=10.0, cameras=cameras,
                           joint_names=profile.joint_names, finger_joint_names=profile.gripper_joint_names, steps=steps)
        blocks = np.zeros((steps, len(BLOCK_ORDER), 7))
        blocks[..., :3] = rng.uniform([0.4, -0.2, 0.025], [0.65, 0.2, 0.1], (steps, len(BLOCK_ORDER), 3))
        blocks[..., 3] = 1.0
        episodes.append(Episode(
            info=info, time=np.arange(steps) * 0.1, q=profile.ready + rng.normal(0, 0.1, (steps, 6)),
            qd=np.zeros((steps, 6)), finger_q=np.full((steps, 2), 0.02),
            images={c: rng.integers(0, 256, (steps, 64, 64, 3), dtype=np.uint8) for c in cameras},
            actions=rng.uniform(-1, 1, (steps, 5)).astype(np.float32), blocks=blocks))
    return episodes


def measure(variant: str, dataset, preset: str, batch_size: int, steps: int, warmup: int) -> dict:
    options = dict(VARIANTS[variant])
    fused = options.pop('fused')
    cfg = TrainConfig(batch_size=batch_size, **options)
    torch.manual_seed(0)
    model = Gato(dataclasses.replace(PRESETS[preset], context=51))
    loss_fn = BehaviourCloningLoss(model, cfg.action_head, cfg.label_sigma, cfg.aux_weight)
    optimizer = optimizer_for(loss_fn, cfg, fused=fused)
    rng = np.random.default_rng(0)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        batch = collate([dataset[int(k)] for k in rng.integers(0, len(dataset), batch_size)])
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=cfg.bf16):
            loss = loss_fn(**batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(loss_fn.parameters(), cfg.grad_clip)
        optimizer.step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    step = float(np.median(times))
    return {'step_ms_p50': round(step * 1e3, 1), 'timesteps_per_s': round(batch_size / step, 1)}


def main(argv=None) -> int:
    parser = OneLineParser(prog='gato-ros bench train', description=__doc__.splitlines()[0])
    parser.add_argument('--preset', default='tiny', choices=sorted(PRESETS))
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--steps', type=int, default=10, help='measured steps per variant (default 10)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--variants', nargs='+', choices=sorted(VARIANTS), default=list(VARIANTS))
    parser.add_argument('--json', action='store_true', help='print only the JSON line')
    args = parser.parse_args(argv)
    if min(args.batch_size, args.steps, args.threads) < 1 or args.warmup < 0:
        parser.error('--batch-size, --steps and --threads must be >= 1, --warmup >= 0')
    torch.set_num_threads(args.threads)
    dataset = EpisodeDataset(synthetic_episodes(8, 40), DatasetConfig(context=51, prompt_prob=0.0))
    results = {}
    for variant in args.variants:
        results[variant] = measure(variant, dataset, args.preset, args.batch_size, args.steps, args.warmup)
        if not args.json:
            print(f'{variant:12s} {results[variant]}', flush=True)
    base = results.get('baseline')
    report = {'preset': args.preset, 'batch_size': args.batch_size, 'threads': args.threads, 'context': 51,
              'torch': torch.__version__, 'variants': results,
              'speedup_vs_baseline': {k: round(v['timesteps_per_s'] / base['timesteps_per_s'], 2)
                                      for k, v in results.items()} if base else None}
    print(json.dumps(report))
    return 0
