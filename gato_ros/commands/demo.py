"""`gato-ros demo`: sim_node + policy_node + safety_controller_node over real ROS 2 topics, stacking blocks.

  gato-ros demo                                   # UR5e, 3 episodes, runs/demo/demo.mp4
  gato-ros demo --robot sawyer --episodes 1 --json
  gato-ros demo --checkpoint PATH                 # a trained Gato checkpoint drives the arm
  gato-ros demo --expert                          # the scripted expert drives (same topics)
  gato-ros demo --checkpoint PATH --realtime      # SCHED_FIFO per process: keeps the deadlines on a busy machine

Without --checkpoint it uses the committed checkpoint (checkpoints/gato-stack) if there is one, else the scripted
expert (and says so). Prints one line per episode and a summary (--json: one JSON object as the last line);
writes --out/demo.mp4 and --out/demo_success.png. Exit 0 when every episode ran with every command inside the
joint limits, whether or not it stacked (the success rate is in the summary).
"""

import argparse
import json
import os
import sys
from pathlib import Path

from gato_ros.ros.placement import REALTIME_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--robot', choices=('ur5e', 'sawyer'), default='ur5e', help='default ur5e')
    parser.add_argument('--episodes', type=int, default=3, help='number of episodes (default 3)')
    parser.add_argument('--checkpoint', type=Path, help='checkpoint directory (default: the committed one, if any)')
    parser.add_argument('--expert', action='store_true',
                        help='the scripted expert drives instead of the checkpoint (the explicit fallback)')
    parser.add_argument('--seed', type=int, default=1_000_000,
                        help='seed of the first episode (default 1000000: held out from training, like eval)')
    parser.add_argument('--out', type=Path, default=Path('runs/demo'), help='output directory (default runs/demo)')
    parser.add_argument('--max-time', type=float, default=30.0, help='episode limit, sim seconds (default 30)')
    parser.add_argument('--realtime', action='store_true', help=REALTIME_HELP)
    parser.add_argument('--json', action='store_true', help='print the summary as one JSON object, last line')


def _print_summary(summary: dict) -> None:
    latency, deadline, ticks = summary['policy_latency'], summary['policy_deadline'], summary['safety_sim_time']
    inside = deadline['inside_fraction']
    print(f"success rate {summary['success_rate']:.0%} over {summary['episodes']} episodes; "
          f"{summary['driver']} drove: step latency p50 {latency['p50_ms']} ms / p99 {latency['p99_ms']} ms, "
          f"{deadline['steps'] - deadline['missed']}/{deadline['steps']} steps inside the {deadline['deadline_ms']} ms "
          f"deadline ({'n/a' if inside is None else f'{inside:.1%}'}), {summary['policy_hz']} Hz proposals, "
          f"{summary['policy_holds']} holds")
    print(f"safety controller: {ticks['rate_hz']} of {ticks['configured_hz']} commands per sim second "
          f"({ticks['rate_fraction']:.1%}), longest gap {ticks['longest_gap_ticks']} ticks; "
          f"{summary['commands_outside_limits']} commands outside the joint limits; real-time factor "
          f"{summary['realtime_factor']}; {summary['seconds']} s wall")
    print(f"video {summary['video']}, success frame {summary['success_png']}")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
    from gato_ros.ros.demo import DemoOptions, Interrupted, run_demo

    try:
        options = DemoOptions(robot=args.robot, episodes=args.episodes, checkpoint=args.checkpoint,
                              expert=args.expert, seed=args.seed, out=args.out, max_time=args.max_time,
                              realtime=args.realtime)
    except ValueError as exc:
        print(f'gato-ros demo: {exc}', file=sys.stderr)
        return 2
    try:
        summary = run_demo(options)
    except Interrupted:
        print('gato-ros demo: interrupted; the arm was braked to a hold and all nodes were destroyed',
              file=sys.stderr)
        return 130
    except Exception as exc:  # a node failed to start or a callback raised: say what, exit non-zero
        print(f'gato-ros demo failed: {type(exc).__name__}: {exc}', file=sys.stderr)
        return 1
    _print_summary(summary)
    if args.json:
        print(json.dumps(summary))
    if summary['success_rate'] == 0:   # the learned policy stacks about half of the episodes: a result, not a fault
        print('gato-ros demo: no episode stacked the blocks', file=sys.stderr)
    if summary['commands_outside_limits']:
        print(f"gato-ros demo: {summary['commands_outside_limits']} commands outside the joint limits", file=sys.stderr)
        return 1
    return 0
