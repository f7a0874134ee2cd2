"""`gato-ros diagnose --checkpoint C --data DIR [--episodes N] [--every K] [--relabel] [--json]`: teacher-forced
action error of a checkpoint on held-out recorded episodes, next to the copy-previous and predict-zero baselines,
per expert phase, and (with a history of several timesteps) with the past actions blanked.
See gato_ros.core.diagnosis."""

import argparse
import json
from pathlib import Path

from gato_ros.commands import arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, type=arguments.checkpoint,
                        help='checkpoint directory, or a training --out directory (its newest checkpoint)')
    parser.add_argument('--data', required=True, type=Path, help='directory of HELD-OUT recorded episodes (*.mcap)')
    parser.add_argument('--episodes', type=arguments.positive_int, default=15,
                        help='episodes to use, first by name (default 15)')
    parser.add_argument('--every', type=arguments.positive_int, default=1, help='use every K-th timestep (default 1)')
    parser.add_argument('--threads', type=arguments.positive_int, default=None,
                        help='torch threads (default: torch decides)')
    parser.add_argument('--relabel', action='store_true',
                        help="score against the current scripted expert's action at each recorded state (as "
                             'train --relabel) instead of the recorded actions')
    parser.add_argument('--json', action='store_true', help='print the report as one JSON line')


def run(args: argparse.Namespace) -> int:
    import torch

    from gato_ros.core.data import episode_paths, read_episode
    from gato_ros.core.data.dataset import EpisodeTokens
    from gato_ros.core.data.relabel import relabelled
    from gato_ros.core.diagnosis import diagnose
    from gato_ros.core.policy import GatoPolicy
    from gato_ros.core.robots import load_profile

    if args.threads:
        torch.set_num_threads(args.threads)
    paths = episode_paths(args.data)[:args.episodes]
    if not paths:
        raise SystemExit(f'{args.data}: no episodes (*.mcap)')
    episodes = [read_episode(p) for p in paths]
    if args.relabel:   # an episode without block poses: a ValueError naming it, one line (cli)
        episodes = [relabelled(ep) for ep in episodes]
    checkpoint = args.checkpoint
    policy = GatoPolicy.from_checkpoint(checkpoint, load_profile(episodes[0].info.robot))
    history = max(1, policy.spec.context // EpisodeTokens(episodes[0]).tokens_per_timestep)
    report = {'checkpoint': str(checkpoint), 'data': str(args.data), 'relabelled': args.relabel,
              **diagnose(policy.model.float(), episodes, history=history, every=args.every,
                         decoding=policy.spec.decoding)}
    if args.json:
        print(json.dumps(report))
        return 0
    print(f"{report['timesteps']} timesteps of {report['episodes']} episodes, history {history} timestep(s); "
          'mean absolute action error:')
    print(f"{'':34s}" + ''.join(f'{k:>9s}' for k in report['mae']['predict_zero']))
    for name, row in report['mae'].items():
        print(f'{name:34s}' + ''.join(f'{v:9.4f}' for v in row.values()))
    for phase, rows in report['mae_by_phase'].items():
        print(f"phase {phase} ({rows['timesteps']} timesteps): model_mean {rows['model_mean']['mean']:.4f}, "
              f"copy_previous {rows['copy_previous']['mean']:.4f}, predict_zero {rows['predict_zero']['mean']:.4f}")
    return 0
