"""Benchmark one SafetyFilter tick, FK and the links' collision geometry included, on a robot's real profile and URDF.

The loop runs like the safety controller: 500 Hz ticks, a fresh policy proposal at 10 Hz that moves the
joints toward random targets around the ready pose (some run into the workspace bounds). Only tick() is timed.
Then the same ticks run paced at --rate for --paced-seconds, each waiting for its deadline as the node's timer does,
and the longest gap between two ticks is reported against a UR's 40 ms: what this machine's scheduler and its
load (optionally --realtime, SCHED_FIFO) do to a fixed-rate loop, without ROS. `gato-ros bringup --json` reports
the same gaps for the node over real topics.
"""

import collections
import json
import time

import numpy as np

from gato_ros.benchmarks import OneLineParser
from gato_ros.core.robots import Kinematics, load_profile
from gato_ros.core.robots.kinematics import LinkGeometry
from gato_ros.core.safety import Proposal, SafetyConfig, SafetyFilter
from gato_ros.core.safety.config import UR_COMMAND_TIMEOUT
from gato_ros.core.stats import TickSummary
from gato_ros.ros.placement import PRIORITIES, Placement, PlacementError, place

PROPOSAL_PERIOD = 50  # ticks between proposals: 10 Hz policy under a 500 Hz filter
SPREAD = 0.6          # rad: std of the random joint targets; wide enough that some hit the bounds


def main(argv=None) -> int:
    parser = OneLineParser(prog='gato-ros bench safety', description=__doc__.splitlines()[0])
    parser.add_argument('--robot', choices=('ur5e', 'sawyer'), default='ur5e')
    parser.add_argument('--ticks', type=int, default=20000, help='timed ticks (default 20000)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--no-links', action='store_true', help="tool point only: skip the links' collision geometry")
    parser.add_argument('--rate', type=float, default=250.0, help='paced loop rate, Hz (default 250)')
    parser.add_argument('--paced-seconds', type=float, default=5.0, help='paced loop duration, s (default 5)')
    parser.add_argument('--realtime', action='store_true',
                        help="run the paced loop SCHED_FIFO at the safety controller's priority")
    parser.add_argument('--json', action='store_true', help='print one JSON object as the last line')
    args = parser.parse_args(argv)
    if args.ticks < 100:
        parser.error(f'--ticks must be >= 100, got {args.ticks}')
    if not 10.0 <= args.rate <= 1000.0 or not 0.5 <= args.paced_seconds <= 60.0:
        parser.error(f'--rate must be 10..1000 Hz and --paced-seconds 0.5..60 s, got {args.rate}, '
                     f'{args.paced_seconds}')

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

    try:
        gaps = paced(safety, profile, config, rng, args.rate, args.paced_seconds, args.realtime)
    except PlacementError as exc:
        parser.exit(2, f'gato-ros bench safety: {exc}\n')

    p50, p99 = (float(np.percentile(durations, p) * 1e6) for p in (50, 99))
    cpu50, cpu99 = (float(np.percentile(cpu, p) * 1e6) for p in (50, 99))
    what = 'FK included' if links is None else f'FK and {len(links.names)} link shapes included'
    print(f'safety filter tick ({args.robot}, {len(profile.joint_names)} joints, {what}): '
          f'p50 {p50:.1f} us, p99 {p99:.1f} us, max {durations.max() * 1e6:.1f} us over {args.ticks} ticks')
    print(f'thread CPU time per tick (excludes preemption on a busy machine): p50 {cpu50:.1f} us, '
          f'p99 {cpu99:.1f} us')
    print('statuses: ' + ', '.join(f'{name} {count}' for name, count in statuses.most_common()))
    print(f'paced at {args.rate:g} Hz for {args.paced_seconds:g} s{" (SCHED_FIFO)" if args.realtime else ""}: '
          f'{gaps.rate_hz:.1f} ticks/s, longest gap {gaps.longest_gap_ms:.1f} ms ({gaps.longest_gap_ticks:.1f} ticks), '
          f'{gaps.gaps_over_limit} over {gaps.limit_ms:g} ms')
    if args.json:
        print(json.dumps({'robot': args.robot, 'ticks': args.ticks, 'links': links is not None,
                          'tick_us_p50': round(p50, 2), 'tick_us_p99': round(p99, 2),
                          'tick_us_max': round(float(durations.max()) * 1e6, 2),
                          'tick_cpu_us_p50': round(cpu50, 2), 'tick_cpu_us_p99': round(cpu99, 2),
                          'paced': {'realtime': args.realtime, **gaps.to_dict()}}))
    return 0


def paced(safety: SafetyFilter, profile, config: SafetyConfig, rng, rate: float, seconds: float,
          realtime: bool) -> TickSummary:
    """Ticks at `rate` for `seconds`, each after sleeping to its deadline; the gaps between tick ends."""
    place(Placement(realtime_priority=PRIORITIES['safety'] if realtime else 0), 'gato-ros bench safety --realtime')
    period, q, qd = 1.0 / rate, profile.ready.copy(), np.zeros(len(profile.joint_names))
    safety.reset(q)
    ends, now, proposal = [], 0.0, None
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(max(0.0, start + len(ends) * period - time.monotonic()))
        now += period
        if len(ends) % PROPOSAL_PERIOD == 0:
            goal = profile.ready + rng.normal(0.0, SPREAD, q.shape)
            proposal = Proposal(now, now + np.array([0.0, 0.1, 0.2]), np.linspace(q, goal, 3))
        out = safety.tick(now, q, qd, proposal, observation_age=0.02)
        q, qd = out.positions, out.velocities
        ends.append(time.monotonic())
    return TickSummary.from_runs([ends], rate, UR_COMMAND_TIMEOUT)
