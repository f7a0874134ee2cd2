"""`gato-ros sim expert`: run the scripted expert in the embedded simulation, through the SafetyFilter."""

import json
import time

from gato_ros.commands import arguments


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest='action', required=True, metavar='ACTION')
    expert = sub.add_parser('expert', help='Run the scripted stacking expert for N episodes and report success')
    expert.add_argument('--robot', type=arguments.robot, default='ur5e',
                        help='robot profile name or YAML path (default: ur5e)')
    expert.add_argument('--episodes', type=arguments.positive_int, default=10, help='number of episodes (default: 10)')
    expert.add_argument('--seed', type=int, default=0, help='seed of the first episode; episode i uses seed + i')
    expert.add_argument('--task', nargs=2, default=('red', 'blue'), metavar=('TOP', 'BOTTOM'),
                        help='stack block TOP on block BOTTOM (default: red blue)')
    expert.add_argument('--json', action='store_true', help='print one JSON object as the last line of stdout')


def run(args) -> int:
    from tqdm import tqdm

    from gato_ros.core.robots import Kinematics
    from gato_ros.core.sim import SimConfig, StackingSim
    from gato_ros.core.sim.expert import ScriptedExpert
    from gato_ros.core.sim.runner import RunnerConfig, make_safety_filter, run_episode

    sim = StackingSim(SimConfig(robot=args.robot, task=tuple(args.task)))  # a bad task: one line, exit 2 (cli.py)
    kin = Kinematics(sim.profile)
    runner = RunnerConfig()
    expert = ScriptedExpert(sim.config.task, sim.config.block_size)
    start = time.perf_counter()
    results = []
    for i in tqdm(range(args.episodes), desc=f'expert {sim.profile.name}', unit='episode'):
        safety = make_safety_filter(sim.profile, kin, runner)  # fresh filter: each episode restarts sim time at 0
        results.append(run_episode(sim, expert, safety, kin, args.seed + i, runner))
    seconds = time.perf_counter() - start
    summary = {
        'robot': sim.profile.name,
        'task': list(sim.config.task),
        'episodes': len(results),
        'seed': args.seed,
        'success_rate': sum(r.success for r in results) / len(results),
        'mean_steps': sum(r.steps for r in results) / len(results),
        'mean_sim_time': round(sum(r.sim_time for r in results) / len(results), 3),
        'safety_interventions': sum(r.safety_interventions for r in results),
        'failed_seeds': [r.seed for r in results if not r.success],
        'seconds': round(seconds, 2),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f'{key}: {value}')
    return 0
