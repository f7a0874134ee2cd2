"""End to end over real rclpy + Fast DDS: the nodes run in their own processes (`gato-ros bringup`, or the node
mains with --ros-args); this process plays the arm (cameras + /joint_states following the commands) and checks
what arrives. Random tiny-preset weights: the checks are about the ROS shell and the safety envelope.

One process start-up is shared by a sequence of checks per arm, to keep the suite within its time share.
Policy timing is relaxed (2 Hz, 0.5 s deadline) because a loaded 2-core machine runs these next to other work;
the staleness path keeps the production threshold (PolicyNodeConfig's stale_timeout).
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from std_msgs.msg import Float64
from std_srvs.srv import SetBool, Trigger

from ros_helpers.fake_arm import FakeArm, wait_for

from gato_ros.core.robots import load_profile
from gato_ros.ros.params import PolicyNodeConfig

pytestmark = pytest.mark.slow

CAMERAS = {'front_left': '/camera/front_left/image_raw',
           'front_right': '/camera/front_right/image_raw/compressed'}  # jpeg CompressedImage
POLICY = {'rate': 2.0, 'deadline': 0.5, 'horizon': 1.0, 'stale_timeout': PolicyNodeConfig().stale_timeout,
          'preset': 'tiny', 'allow_random_weights': True, 'cameras': list(CAMERAS),
          'camera_topics': list(CAMERAS.values())}
SAFETY = {'stale_timeout': 1.5}  # > policy period + step latency
STARTUP = 90.0  # s: torch import and model build on a busy machine
# Command rates below the 250 Hz default: three Python processes share two cores here, and an rclpy
# executor costs milliseconds of CPU per tick, so 100-125 Hz skipped ticks in some runs (the default rate is
# measured with `gato-ros bringup`, docs/ros.md). The filter integrates at most 2.5 periods per tick.
BRINGUP_RATE = 50.0
SEPARATE_RATE = 50.0
JTC_RATE = 50.0
MAX_STEP_DT = 2.5 / 50.0
SLACK = 0.25    # s: scheduling slack for three processes on two shared cores (one-process bringup: up to
                # 0.34 s from the camera stop to the hold was measured, 0.1 s stale timeout included)


def write_params(folder: Path, safety=None) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / 'params.yaml'
    path.write_text(yaml.safe_dump({'/**/policy_node': {'ros__parameters': POLICY},
                                    '/**/safety_controller_node': {'ros__parameters': {**SAFETY, **(safety or {})}}}))
    return path


def start(args, log: Path, niceness: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], stdout=log.open('w'), stderr=subprocess.STDOUT,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'}, preexec_fn=lambda: os.nice(niceness))


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def window(arm, interface, seconds):
    t = time.monotonic()
    time.sleep(seconds)
    return arm.commands_since(interface, t)


def positions_steps(commands):
    positions = np.array([c[1] for c in commands])
    return positions, np.abs(np.diff(positions, axis=0))


def assert_within_limits(profile, commands, max_dt=0.01, commanded_velocities=False):
    positions, steps = positions_steps(commands)
    lower, upper = profile.lower + profile.margin - 1e-6, profile.upper - profile.margin + 1e-6
    assert np.all((positions >= lower) & (positions <= upper)), 'a command left the joint limits minus margin'
    assert np.all(steps <= profile.velocity * max_dt + 1e-9), 'a command step exceeds velocity * max_dt'
    if commanded_velocities:
        assert np.all(np.abs(np.array([c[2] for c in commands])) <= profile.velocity + 1e-9)


def rate_window(arm, interface: str, rate: float, label: str, attempts: int = 3, seconds: float = 2.0) -> list:
    """Commands of a `seconds` window whose median interval is within 10 % of 1/rate and which holds at least
    half the commands; up to `attempts` windows, because three Python processes share two cores here and a
    transient stall (another process's burst) must not read as a wrong rate. Returns every window's commands."""
    windows = []
    for _ in range(attempts):
        commands = window(arm, interface, seconds)
        windows.append(commands)
        intervals = np.diff([c[0] for c in commands])
        median_rate, count_rate = 1.0 / np.median(intervals), len(commands) / seconds
        print(f'{label}: median-interval rate {median_rate:.1f} Hz, count rate {count_rate:.1f} Hz, '
              f'p99 interval {np.percentile(intervals, 99) * 1e3:.1f} ms')
        if abs(median_rate - rate) <= 0.1 * rate and count_rate >= 0.5 * rate:
            return [c for w in windows for c in w]
    raise AssertionError(f'{label}: no {seconds} s window at {rate} Hz +-10 % in {attempts} tries')


def braking_commands(log: Path, commands) -> list:
    """The commands the node published in its shutdown brake (it logs how many)."""
    n = int(re.search(r'shutdown: (\d+) braking commands published', log.read_text()).group(1))
    assert n >= 1
    return commands[-n:]


def moving(commands) -> bool:
    return len(commands) > 2 and not np.array_equal(commands[-1][1], commands[-2][1])


def hold_time(commands) -> float | None:
    """Time of the first command from which the commanded position never changes again; None if it still moves."""
    positions, steps = positions_steps(commands)
    moving = np.flatnonzero(steps.max(axis=1) > 0)
    last = moving[-1] + 1 if moving.size else 0
    t = commands[last][0]
    return t if last < len(commands) - 1 else None


def status_after(arm, key, t, prefix, timeout=10.0) -> str:
    found = []
    wait_for(lambda: found.extend(s for s in arm.statuses_since(key, t) if s.startswith(prefix)) or found, timeout)
    assert found, f'no {key} status {prefix}* after t; got {arm.statuses_since(key, t)[-5:]}'
    return found[0]


@pytest.fixture
def ur5e_bringup(tmp_path):
    arm = FakeArm('ur5e', CAMERAS)
    log = tmp_path / 'bringup.log'
    proc = start(['-m', 'gato_ros.cli', 'bringup', '--robot', 'ur5e', '--allow-random-weights', '--json',
                  '--ros-args', '--params-file', str(write_params(tmp_path, {'rate': BRINGUP_RATE}))], log)
    yield arm, proc, log
    stop(proc)
    arm.close()


def test_ur5e_bringup_end_to_end(ur5e_bringup):
    arm, proc, log = ur5e_bringup
    profile = arm.profile
    assert wait_for(lambda: arm.commands['forward_position'], STARTUP), f'no commands:\n{log.read_text()}'
    status_after(arm, 'policy', 0.0, 'OK', timeout=30)
    assert wait_for(lambda: any(d.status[0].name == 'gato_ros: /gato/policy_node' and d.status[0].message.startswith(
        ('OK', 'DEADLINE_MISSED')) for _, d in list(arm.diagnostics)), 5.0), 'policy_node stepping: not on /diagnostics'

    # Camera stops while the arm moves: STALE_INPUT, and the command holds within stale_timeout + braking.
    assert wait_for(lambda: moving(arm.commands['forward_position']), 20.0), arm.status
    arm.camera_on, t_stop = False, time.monotonic()
    before = arm.commands_since('forward_position', t_stop - 0.1)
    speed = np.abs(before[-1][1] - before[-2][1]) * BRINGUP_RATE if len(before) > 1 else np.zeros(6)
    braking = float(np.max(speed / profile.acceleration))
    commands = window(arm, 'forward_position', 1.5)
    assert 'front_left' in status_after(arm, 'policy', t_stop, 'STALE_INPUT')
    status_after(arm, 'safety', t_stop, 'STALE_INPUT')
    t_hold = hold_time(commands)
    print(f'camera stop: speed before {speed.max():.3f} rad/s, braking {braking:.3f} s, '
          f'held after {t_hold and t_hold - t_stop:.3f} s')
    assert t_hold is not None and t_hold - t_stop <= POLICY['stale_timeout'] + 0.02 + braking + SLACK, \
        f'held {t_hold and t_hold - t_stop:.3f} s after the camera stopped (braking {braking:.3f} s)'
    arm.camera_on = True

    # Rate and limits on the profile's topic (forward_position).
    commands = window(arm, 'forward_position', 2.0)
    # One process: the policy node's callbacks and the tick share one executor and the GIL; on two cores
    # beside the test's own process it dropped ticks (25-41 Hz of 50 measured), so only a floor is asserted
    # here. The +-10 % rate is asserted for separate processes (test_sawyer_separate_processes).
    count_rate = len(commands) / 2.0
    print(f'ur5e forward_position (bringup): {count_rate:.1f} commands/s of {BRINGUP_RATE}')
    assert count_rate >= 0.4 * BRINGUP_RATE, f'bringup: only {count_rate:.1f} of {BRINGUP_RATE} commands per second'
    assert_within_limits(profile, commands, max_dt=MAX_STEP_DT)

    # bgr8 and mono8 raw frames (front_right stays jpeg): steps run (OK, or late on a busy machine).
    for encoding in ('bgr8', 'mono8'):
        arm.encoding, t = encoding, time.monotonic()
        status = status_after(arm, 'policy', t + 0.6, ('OK', 'DEADLINE_MISSED'))
        assert not any(s.startswith('INVALID_INPUT') for s in arm.statuses_since('policy', t + 0.6)), status
    arm.encoding = 'rgb8'

    # A malformed frame (step too small) is rejected with an error log; the node keeps running.
    arm.malformed, t = True, time.monotonic()
    assert 'step' in status_after(arm, 'policy', t, 'INVALID_INPUT')
    arm.malformed, t = False, time.monotonic()
    status_after(arm, 'policy', t + 0.6, ('OK', 'DEADLINE_MISSED'))
    assert 'ERROR' in log.read_text() and 'smaller than width*channels' in log.read_text()

    # E-stop: zero velocity, latched through the release until ~/reset.
    status_after(arm, 'policy', time.monotonic(), ('OK', 'DEADLINE_MISSED'))
    t = time.monotonic()
    assert arm.call(SetBool, '/gato/safety_controller_node/estop', SetBool.Request(data=True)).success
    status_after(arm, 'safety', t, 'ESTOP')
    assert wait_for(lambda: not moving(arm.commands['forward_position']), 2.0), 'no hold after the e-stop'
    _, steps = positions_steps(window(arm, 'forward_position', 1.0))
    assert steps.max() == 0.0, 'the command moved during the e-stop'
    assert wait_for(lambda: any(d.status[0].level == b'\x02' and d.status[0].message.startswith('ESTOP')
                                for t_d, d in list(arm.diagnostics) if t_d > t), 2.0), 'no ERROR on /diagnostics'
    arm.call(SetBool, '/gato/safety_controller_node/estop', SetBool.Request(data=False))
    _, steps = positions_steps(window(arm, 'forward_position', 0.7))
    assert steps.max() == 0.0, 'releasing the e-stop must not clear the latch'
    reset = arm.call(Trigger, '/gato/safety_controller_node/reset', Trigger.Request())
    assert reset.success, reset.message
    assert wait_for(lambda: arm.status['safety'][-1][1].split(':')[0] != 'ESTOP', 5.0), 'still ESTOP after reset'

    # Speed scaling 0 % (UR teach pendant slider): the command comes to rest.
    arm.speed_scaling_pub.publish(Float64(data=0.0))
    time.sleep(1.0)
    _, steps = positions_steps(window(arm, 'forward_position', 0.5))
    assert steps.max() == 0.0, 'speed scaling 0 % must stop the arm'

    # SIGTERM: the last commands brake to a hold, then the process exits 0.
    assert stop(proc) == 0, log.read_text()[-3000:]
    tail = braking_commands(log, arm.commands['forward_position'])
    _, steps = positions_steps(arm.commands['forward_position'][-len(tail) - 1:])
    assert np.all(np.diff(steps.max(axis=1)) <= 1e-12), 'braking must never speed up'
    assert steps[-1].max() == 0.0, 'the last command is not at rest'


@pytest.fixture
def sawyer_nodes(tmp_path):
    arm = FakeArm('sawyer', CAMERAS)
    arm.drop_joint = 'right_j3'
    params = write_params(tmp_path, {'command_interface': 'forward_velocity', 'rate': SEPARATE_RATE})
    common = ['--ros-args', '-p', 'robot:=sawyer', '--params-file', str(params)]
    logs = {name: tmp_path / f'{name}.log' for name in ('policy', 'safety')}
    # As on a robot host: the safety controller gets the CPU first (there: chrt), the policy what is left.
    procs = {'policy': start(['-m', 'gato_ros.ros.nodes.policy_node', *common], logs['policy'], niceness=10),
             'safety': start(['-m', 'gato_ros.ros.nodes.safety_controller_node', *common], logs['safety'])}
    yield arm, procs, logs, tmp_path
    for proc in procs.values():
        stop(proc)
    arm.close()


def test_sawyer_separate_processes(sawyer_nodes):
    arm, procs, logs, tmp_path = sawyer_nodes
    profile = load_profile('sawyer')

    # /joint_states without right_j3: a clear error from both nodes and no command at all.
    assert 'right_j3' in status_after(arm, 'safety', 0.0, 'INVALID_INPUT', timeout=STARTUP)
    assert 'right_j3' in status_after(arm, 'policy', 0.0, 'INVALID_INPUT', timeout=STARTUP)
    time.sleep(1.0)
    assert not any(arm.commands.values()), 'a command was published without a complete /joint_states'
    assert "missing joint(s) ['right_j3']" in logs['safety'].read_text()

    # Complete /joint_states: velocity commands at the configured rate within the limits.
    arm.drop_joint = None
    assert wait_for(lambda: arm.commands['forward_velocity'], 20.0)
    # Measure once the policy steps: its start-up (torch import, model build) would starve the first ticks.
    status_after(arm, 'policy', time.monotonic(), 'OK', timeout=STARTUP)
    commands = rate_window(arm, 'forward_velocity', SEPARATE_RATE, 'sawyer forward_velocity')
    velocities = np.array([c[2] for c in commands])
    assert np.all(np.abs(velocities) <= profile.velocity + 1e-9)

    # SIGTERM to the safety node: it brakes and ends on zero velocity (a velocity controller repeats it).
    assert stop(procs['safety']) == 0, logs['safety'].read_text()[-3000:]
    tail = braking_commands(logs['safety'], arm.commands['forward_velocity'])
    speeds = np.abs(np.array([c[2] for c in tail])).max(axis=1)
    print(f'sawyer SIGTERM: {len(tail)} braking commands from {speeds[0]:.3f} rad/s')
    assert np.all(np.diff(speeds) <= 1e-12), 'braking must never speed up'
    assert speeds[-1] == 0.0, f'last velocity command {tail[-1][2]} is not zero'

    # The joint_trajectory interface: one-point trajectories at the configured rate.
    log = tmp_path / 'safety_jtc.log'
    jtc = write_params(tmp_path / 'jtc', {'command_interface': 'joint_trajectory', 'rate': JTC_RATE})
    procs['safety'] = start(['-m', 'gato_ros.ros.nodes.safety_controller_node', '--ros-args', '-p',
                             'robot:=sawyer', '--params-file', str(jtc)], log)
    assert wait_for(lambda: arm.commands['joint_trajectory'], 30.0), log.read_text()
    commands = rate_window(arm, 'joint_trajectory', JTC_RATE, 'sawyer joint_trajectory')
    assert_within_limits(profile, commands, max_dt=MAX_STEP_DT, commanded_velocities=True)
