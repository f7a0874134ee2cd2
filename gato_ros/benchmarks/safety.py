"""Benchmark one SafetyFilter tick, FK and the links' collision geometry included, on a robot's real profile and URDF.

The loop runs like the safety controller: 500 Hz ticks, a fresh policy proposal at 10 Hz that moves the
joints toward random targets around the ready pose (some run into the workspace bounds). Only tick() is timed.
"""

import collections
import json
import time

import numpy as np

from gato_ros.benchmarks import OneLineParser
from gato_ros.core.robots import Kinematics, load_profile
from gato_ros.core.robots.kinematics import LinkGeometry
from gato_ros.core.safety import Proposal, SafetyConfig, SafetyFilter

PROPOSAL_PERIOD = 50  # ticks between proposals: 10 Hz policy under a 500 Hz filter
SPREAD = 0.6          # rad: std of the random joint targets; wide enough that some hit the bounds


def main(argv=None) -> int:
    parser = OneLineParser(prog='gato-ros bench safety', description=__doc__.splitlines()[0])
    parser.add_argument('--robot', choices=('ur5e', 'sawyer'), default='ur5e')
    parser.add_argument('--ticks', type=int, default=20000, help='timed ticks (default 20000)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-links', action='store_true', help="tool point only: skip the links' collision geometry")
    parser.add_argument('--json', action='store_true', help='print one JSON object as the last line')
    args = parser.parse_args(argv)
    if args.ticks < 100:
        parser.error(f'--ticks must be >= 100, got {args.ticks}')

    profile = load_profile(args.robot)
    kinematics = Kinematics(profile)
    config = SafetyConfig.from_profile(profile)
    links = None if args.no_links else LinkGeometry(kinematics)
    safety = SafetyFilter(config, kinematics.tool_position, links=links)
    rng = np.random.default_rng(args.seed)
    q, qd = profile.ready.copy(), np.zeros(len(profile.joint_names))
    safety.reset(q)
    now, proposal = 0.0, None
    durations = np.empty(args.ticks)
    cpu = np.empty(args.ticks)  # this thread's CPU time: the tick's cost without preemption by other processes
    statuses = collections.Counter()
    for i in range(args.ticks):
        now += config.dt
        if i % PROPOSAL_PERIOD == 0:
            goal = profile.ready + rng.normal(0.0, SPREAD, q.shape)
            proposal = Proposal(now, now + np.array([0.0, 0.1, 0.2]), np.linspace(q, goal, 3))
        start, start_cpu = time.perf_counter(), time.thread_time()
        out = safety.tick(now, q, qd, proposal, observation_age=0.02)
        durations[i] = time.perf_counter() - start
        cpu[i] = time.thread_time() - start_cpu
        q, qd = out.positions, out.velocities
        statuses[out.status.name] += 1

    p50, p99 = (float(np.percentile(durations, p) * 1e6) for p in (50, 99))
    cpu50, cpu99 = (float(np.percentile(cpu, p) * 1e6) for p in (50, 99))
    what = 'FK included' if links is None else f'FK and {len(links.names)} link shapes included'
    print(f'safety filter tick ({args.robot}, {len(profile.joint_names)} joints, {what}): '
          f'p50 {p50:.1f} us, p99 {p99:.1f} us, max {durations.max() * 1e6:.1f} us over {args.ticks} ticks')
    print(f'thread CPU time per tick (excludes preemption on a busy machine): p50 {cpu50:.1f} us, '
          f'p99 {cpu99:.1f} us')
    print('statuses: ' + ', '.join(f'{name} {count}' for name, count in statuses.most_common()))
    if args.json:
        print(json.dumps({'robot': args.robot, 'ticks': args.ticks, 'links': links is not None,
                          'tick_us_p50': round(p50, 2), 'tick_us_p99': round(p99, 2),
                          'tick_us_max': round(float(durations.max()) * 1e6, 2),
                          'tick_cpu_us_p50': round(cpu50, 2), 'tick_cpu_us_p99': round(cpu99, 2)}))
    return 0
