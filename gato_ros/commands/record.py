"""`gato-ros record --robot R --episodes N --out DIR [--seed S] [--task red,blue ...] [--cameras ...] [--json]`:
scripted-expert demonstrations in simulation, one rosbag2 bag (metadata.yaml + MCAP) per episode, and
DIR/README.md, the dataset card. Finished episodes in DIR are skipped, so an interrupted recording resumes where
it stopped."""

import argparse
import json
import time
from pathlib import Path

from tqdm import tqdm

from gato_ros.commands import arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--robot', type=arguments.robot, default='ur5e',
                        help='robot profile: ur5e, sawyer or a YAML path (default ur5e)')
    parser.add_argument('--episodes', type=arguments.positive_int, required=True, help='number of episodes')
    parser.add_argument('--out', required=True, type=Path, help='output directory (created if missing)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the first episode; episode i uses seed + i')
    parser.add_argument('--task', type=arguments.task_pair, action='extend', nargs='+',
                        help="'top,bottom' block colours, one or more (episodes cycle through the tasks; "
                             'default red,blue)')
    parser.add_argument('--image-size', type=arguments.image_size, default=64,
                        help='camera resolution, square, a multiple of the 16 px patch (default 64)')
    parser.add_argument('--cameras', type=arguments.camera, nargs='+', default=['front_left', 'front_right'],
                        help='cameras recorded, the observation images (default front_left front_right; '
                             "'wrist' rides on the tool)")
    parser.add_argument('--control-hz', type=float, default=10.0, help='expert action rate (default 10)')
    parser.add_argument('--max-time', type=float, default=30.0, help='episode limit, sim seconds (default 30)')
    parser.add_argument('--json', action='store_true', help='print one JSON summary as the last line')


def run(args: argparse.Namespace) -> int:
    from gato_ros.core.data.card import write_dataset_card
    from gato_ros.core.data.record import Recorder, pending_episodes
    from gato_ros.core.sim import SimConfig
    from gato_ros.core.sim.runner import RunnerConfig

    tasks = args.task or [('red', 'blue')]
    args.out.mkdir(parents=True, exist_ok=True)
    todo = pending_episodes(args.out, args.robot, tasks, args.seed, args.episodes)
    runner = RunnerConfig(control_hz=args.control_hz, max_time=args.max_time, render=True)
    recorders, successes, steps = {}, 0, 0
    start = time.perf_counter()
    bar = tqdm(todo, desc=f'record {args.robot}', unit='episode', dynamic_ncols=True)
    try:
        for done, (seed, task, path) in enumerate(bar, 1):
            if task not in recorders:
                recorders[task] = Recorder(SimConfig(robot=args.robot, task=task, image_size=args.image_size,
                                                     cameras=tuple(args.cameras)), runner)
            info, _ = recorders[task].record(seed, path)
            successes += info.success
            steps += info.steps
            bar.set_postfix(success=f'{successes / done:.0%}', steps=info.steps)
    finally:
        bar.close()
        for recorder in recorders.values():
            recorder.close()
    write_dataset_card(args.out, args.image_size, arguments.command_line('record', args))
    summary = {'robot': args.robot, 'episodes': args.episodes, 'recorded': len(todo),
               'skipped': args.episodes - len(todo), 'success_rate': successes / len(todo) if todo else None,
               'mean_steps': steps / len(todo) if todo else None,
               'seconds': round(time.perf_counter() - start, 2), 'out': str(args.out)}
    print(json.dumps(summary) if args.json else
          f"recorded {summary['recorded']} episodes ({summary['skipped']} already there) to {args.out} in "
          f"{summary['seconds']} s; expert success {summary['success_rate']}")
    return 0
