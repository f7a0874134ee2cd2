"""`gato-ros dagger --checkpoint C --robot R --episodes N --out DIR [--seed S] [--beta B] [--json]`: one DAgger
round. The checkpoint drives the simulated arm through the SafetyFilter (with probability B per step the expert
does), and every visited state is written with the scripted expert's action as its label, one episode (rosbag2
bag) per rollout, and DIR/README.md, the dataset card. Train on the demonstrations plus these directories to
aggregate. Resumable like `record`."""

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from gato_ros.commands import arguments

DAGGER_SEED = 3_000_000   # rollout seeds: away from recording (0..), evaluation (1e6..) and prompt (2e6..) seeds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, type=arguments.checkpoint,
                        help='checkpoint directory, or a training --out directory (its newest checkpoint)')
    parser.add_argument('--robot', default='ur5e', type=arguments.robot,
                        help='robot profile: ur5e, sawyer or a YAML path (default ur5e)')
    parser.add_argument('--episodes', type=arguments.positive_int, required=True, help='number of rollouts')
    parser.add_argument('--out', required=True, type=Path, help='output directory (created if missing)')
    parser.add_argument('--seed', type=int, default=DAGGER_SEED, help=f'first rollout seed (default {DAGGER_SEED})')
    parser.add_argument('--task', type=arguments.task_pair, default=('red', 'blue'),
                        help="'top,bottom' (default red,blue)")
    parser.add_argument('--beta', type=float, default=0.0,
                        help='probability that the expert acts instead of the policy at a step (default 0)')
    parser.add_argument('--max-time', type=float, default=20.0, help='rollout limit, sim seconds (default 20)')
    parser.add_argument('--stop-when-still', type=int, default=20, metavar='STEPS',
                        help='end a rollout once the tool has stayed within 2 mm for STEPS control steps, e.g. '
                             'held at a workspace bound (default 20; 0: never)')
    parser.add_argument('--threads', type=arguments.positive_int, default=1,
                        help='torch threads for the policy (default 1)')
    arguments.add_grip_hysteresis(parser)
    parser.add_argument('--json', action='store_true', help='print one JSON summary as the last line')


def run(args: argparse.Namespace) -> int:
    import torch

    from gato_ros.core.data.card import write_dataset_card
    from gato_ros.core.data.record import Recorder, pending_episodes
    from gato_ros.core.evaluation import PhaseProgress, PolicyActor, progress_report
    from gato_ros.core.policy import GatoPolicy
    from gato_ros.core.robots import load_profile
    from gato_ros.core.sim import SimConfig
    from gato_ros.core.sim.expert import ScriptedExpert
    from gato_ros.core.sim.runner import RunnerConfig

    if not 0.0 <= args.beta <= 1.0:
        raise SystemExit(f'--beta must be in [0, 1], got {args.beta}')
    if args.stop_when_still < 0:
        raise SystemExit(f'--stop-when-still must be >= 0 steps, got {args.stop_when_still}')
    torch.set_num_threads(args.threads)
    profile = load_profile(args.robot)
    policy = GatoPolicy.from_checkpoint(args.checkpoint, profile, **arguments.grip_hysteresis(args))
    spec = policy.spec
    recorder = Recorder(SimConfig(robot=args.robot, task=args.task, image_size=spec.image_size, cameras=spec.cameras),
                        RunnerConfig(control_hz=spec.control_hz, max_time=args.max_time, render=True,
                                     stop_when_still=args.stop_when_still))
    actor = PolicyActor(policy, profile.name)
    progress = PhaseProgress(ScriptedExpert(task=args.task, block_size=recorder.sim_config.block_size))
    reached = []
    args.out.mkdir(parents=True, exist_ok=True)
    todo = pending_episodes(args.out, profile.name, [args.task], args.seed, args.episodes)
    successes, steps, still, start = 0, 0, 0, time.perf_counter()
    bar = tqdm(todo, desc=f'dagger {profile.name}', unit='rollout', dynamic_ncols=True, disable=args.json)
    try:
        for done, (seed, _, path) in enumerate(bar, 1):
            progress.reset()
            info, result = recorder.record(seed, path, driver=actor, beta=args.beta, watch=progress)
            still += result.still
            reached.append(progress.result())
            successes += info.success
            steps += info.steps
            bar.set_postfix(policy_success=f'{successes / done:.0%}')
    finally:
        bar.close()
        recorder.close()
    write_dataset_card(args.out, spec.image_size, arguments.command_line('dagger', args))
    summary = {'robot': profile.name, 'checkpoint': str(args.checkpoint), 'beta': args.beta,
               'episodes': args.episodes, 'recorded': len(todo), 'skipped': args.episodes - len(todo),
               'rollout_success_rate': successes / len(todo) if todo else None, **progress_report(reached),
               'labelled_steps': steps, 'ended_still': still,
               'seconds': round(time.perf_counter() - start, 2), 'out': str(args.out)}
    print(json.dumps(summary) if args.json else
          f"{summary['recorded']} rollouts ({summary['labelled_steps']} expert-labelled steps) in {args.out}; "
          f"the policy succeeded in {summary['rollout_success_rate']}")
    return 0
