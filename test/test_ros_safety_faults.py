"""Fault injection against safety_controller_node over real rclpy + Fast DDS (issue 14): the node runs in its own
process; this process plays the driver, the policy and the attackers (ros_helpers/safety_rig.py). Each test fails
on the node before the fix. Figures are printed (run with -s).

The command rate is 100 Hz (not the default 250) because this 2-core machine runs these beside other work.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from std_srvs.srv import SetBool, Trigger

from ros_helpers.fake_arm import wait_for
from ros_helpers.safety_rig import SafetyRig

pytestmark = pytest.mark.slow

RATE = 100.0
STALE = 0.25
STARTUP = 60.0


def start_node(tmp_path, robot='ur5e', **params):
    args = [sys.executable, '-m', 'gato_ros.ros.nodes.safety_controller_node', '--ros-args',
            '-p', f'robot:={robot}', '-p', f'rate:={RATE}', '-p', f'stale_timeout:={STALE}']
    for key, value in params.items():
        args += ['-p', f'{key}:={str(value).lower() if isinstance(value, bool) else value}']
    log = tmp_path / 'safety.log'
    proc = subprocess.Popen(args, stdout=log.open('w'), stderr=subprocess.STDOUT,
                            env={**os.environ, 'OMP_NUM_THREADS': '1'})
    return proc, log


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(20.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


@pytest.fixture
def rig_factory(tmp_path):
    made = []

    def make(robot='ur5e', interface='forward_position', sim_time=False, **params):
        rig = SafetyRig(robot, interface, sim_time=sim_time)
        proc, log = start_node(tmp_path, robot, command_interface=interface, use_sim_time=sim_time, **params)
        made.append((rig, proc))
        rig.proc, rig.log = proc, log
        return rig
    yield make
    for rig, proc in made:
        stop(proc)
        rig.close()


def running(rig, goal=None):
    """Wait for commands and an OK status while following `goal` (default: hold the ready pose)."""
    rig.goal = rig.profile.ready.copy() if goal is None else goal
    assert wait_for(lambda: rig.commands, STARTUP), rig.log.read_text()[-2000:]
    assert wait_for(lambda: rig.status().startswith('OK'), 20.0), (rig.status(), rig.log.read_text()[-2000:])


def max_step(commands):
    positions = np.array([c[1] for c in commands])
    return float(np.abs(np.diff(positions, axis=0)).max()) if len(positions) > 1 else 0.0


def status_changes(texts):
    codes = [t.split(':')[0] for t in texts]
    return sum(1 for a, b in zip(codes, codes[1:]) if a != b)


# -- 1. first command, re-sync --------------------------------------------------------------------------------


def test_first_joint_state_outside_the_limits_commands_nothing(rig_factory):
    """Fault: a first /joint_states with shoulder_pan = 1e6 made the node command 1,000,000 rad and hold it."""
    def absurd(names, positions, velocities):
        positions[0] = 1e6
        return names, positions, velocities

    rig = rig_factory()
    rig.joint_state_fault = absurd
    rig.goal = rig.profile.ready.copy()
    assert wait_for(lambda: 'outside its URDF limits' in rig.status(), STARTUP), (rig.status(),
                                                                                rig.log.read_text()[-2000:])
    time.sleep(1.0)
    print(f'first /joint_states shoulder_pan = 1e6: {len(rig.commands)} commands, status {rig.status()!r}')
    assert not rig.commands, 'a command was published from an absurd first /joint_states'
    assert rig.status().startswith('INVALID_INPUT') and 'shoulder_pan_joint' in rig.status()
    rig.joint_state_fault = None  # a valid state: it starts, from the measured position
    assert wait_for(lambda: rig.commands, 10.0)
    np.testing.assert_allclose(rig.commands[0][1], rig.profile.ready, atol=1e-9)


def test_reset_with_a_glitched_joint_state_does_not_jump(rig_factory):
    """Fault: ~/reset copied a +1 rad glitch of /joint_states into the command: a 1.000 rad jump (31.8x the step
    bound)."""
    rig = rig_factory()
    running(rig)
    srv = '/gato/safety_controller_node/'
    call = _caller(rig)
    assert call(SetBool, srv + 'estop', SetBool.Request(data=True)).success
    assert wait_for(lambda: rig.status().startswith('ESTOP'), 5.0)
    call(SetBool, srv + 'estop', SetBool.Request(data=False))
    time.sleep(0.3)

    def glitch(names, positions, velocities):
        positions[1] += 1.0
        return names, positions, velocities

    rig.joint_state_fault = glitch
    t = time.monotonic()
    time.sleep(0.2)
    reset = call(Trigger, srv + 'reset', Trigger.Request())
    time.sleep(0.5)
    rig.joint_state_fault = None
    commands = rig.commands_since(t - 0.05)
    jump = max_step(commands)
    bound = float((rig.profile.velocity * max(0.01, 2.5 / RATE)).min())
    print(f'reset during a +1 rad glitch: {reset.success} {reset.message!r}; largest command step {jump:.6f} rad '
          f'(step bound {bound:.4f} rad)')
    assert not reset.success
    assert jump <= bound + 1e-9
    # A clean reset afterwards succeeds, still without a jump (once the clean samples are plausible again).
    time.sleep(1.0)
    t = time.monotonic()
    reset = call(Trigger, srv + 'reset', Trigger.Request())
    assert reset.success, reset.message
    time.sleep(0.3)
    assert max_step(rig.commands_since(t - 0.05)) <= bound + 1e-9


def _caller(rig):
    def call(srv_type, name, request, timeout=10.0):
        client = rig.driver.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), name
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            return future.result()
        finally:
            rig.driver.destroy_client(client)
    return call


# -- 2. /joint_states plausibility ----------------------------------------------------------------------------


@pytest.mark.parametrize('fault, expect', [
    ('duplicate', 'duplicate joint name'),
    ('absurd', 'outside its URDF limits'),
    ('jump', 'faster than its velocity limit'),
    ('nan', 'non-finite'),
])
def test_invalid_joint_state_brakes_at_once_and_reports_once(rig_factory, fault, expect):
    """Fault: NaN / missing joints kept following the proposal for 0.25 s; status flipped INVALID_INPUT/OK every
    tick; a duplicate name or a finite absurd value was accepted."""
    rig = rig_factory()
    goal = rig.profile.ready.copy()
    goal[0] += 1.5
    running(rig, goal)
    assert wait_for(lambda: len(rig.commands) > 2 and np.abs(rig.commands[-1][1] - rig.commands[-2][1]).max() > 1e-3,
                    10.0), 'not moving'

    def corrupt(names, positions, velocities):
        if fault == 'duplicate':
            names, positions, velocities = names + [names[0]], positions + [positions[0] + 0.3], velocities + [0.0]
        elif fault == 'absurd':
            positions[0] = 1e6
        elif fault == 'jump':
            positions[0] += 0.5
        else:
            positions[2] = float('nan')
        return names, positions, velocities

    before = rig.commands[-6:]
    # Speed before the fault: the largest step of the last commands over the nominal period (late ticks make it an
    # overestimate, never an underestimate, of the commanded speed).
    v0 = np.abs(np.diff(np.array([c[1] for c in before]), axis=0)).max(axis=0) * RATE
    t = time.monotonic()
    rig.joint_state_fault = corrupt
    time.sleep(1.0)
    rig.joint_state_fault = None
    commands = rig.commands_since(t)
    texts = rig.statuses_since(t)
    positions = np.array([c[1] for c in commands])
    steps = np.abs(np.diff(positions, axis=0)).max(axis=1)
    travel = float(np.abs(positions - before[-1][1]).max())
    a = rig.profile.acceleration
    # One stop, detected within 3 ticks, from the speed it may have reached meanwhile (accelerating at a).
    v1 = v0 + a * 5 / RATE
    stop = float((v1 ** 2 / (2 * a)).max()) + float(v1.max()) * 3 / RATE
    first_invalid = next((i for i, s in enumerate(texts) if s.startswith('INVALID_INPUT')), None)
    flips = status_changes(texts)
    print(f'{fault}: {travel:.4f} rad travelled after the first bad sample at {v0.max():.3f} rad/s (one stop '
          f'{stop:.4f} rad); {len(texts)} status messages ({flips} changes of code) in 1 s; '
          f'{first_invalid is not None and texts[first_invalid]!r}')
    assert first_invalid is not None, texts[:5]
    assert expect in texts[first_invalid], texts[first_invalid]
    assert travel <= stop, 'kept following the proposal on a rejected /joint_states'
    assert (steps[-10:] == 0.0).all(), 'not at rest'
    assert flips <= 2 and len(texts) <= 6, f'status flip-flop: {texts[:10]}'


# -- 3. velocity interface ------------------------------------------------------------------------------------


def test_velocity_interface_keeps_the_measured_arm_inside_the_bound(rig_factory):
    """Fault: driving wrist_3 into its bound through forward_velocity ended 0.186 rad past it, no fault injected.

    Here the arm runs 10 % faster than commanded (a miscalibrated velocity loop; on the loaded test machine of the
    fault-injection run it was late ticks): a filter that integrates its own model drifts from the real arm. The
    tracking-error limit is relaxed so that the bound, not the tracking error, has to stop it (the rig's own
    executor also takes a command up to 0.25 s late on this machine, 0.77 rad at full speed was seen)."""
    rig = rig_factory(interface='forward_velocity', tracking_error_limit=1.0)
    rig.velocity_gain = 1.1
    running(rig)
    bound = rig.profile.upper[-1] - rig.profile.margin
    goal = rig.profile.ready.copy()
    goal[-1] = bound + 2.0
    rig.goal = goal
    assert wait_for(lambda: 'JOINT_BOUND' in rig.status(), 20.0), rig.status()
    time.sleep(1.0)
    peak = max(q[-1] for _, q in rig.trace)
    print(f'velocity interface, wrist_3 into its bound: measured peak {peak - bound:+.4f} rad over the bound '
          f'({peak - rig.profile.upper[-1]:+.4f} rad over the URDF limit)')
    # The filter cannot know the arm brakes 10 % long: at most 10 % of a stop from full speed past the bound, and
    # never past the URDF limit (the model-only filter ended 0.848 rad past the bound here).
    v, a = rig.profile.velocity[-1], rig.profile.acceleration[-1]
    assert peak <= bound + 0.1 * v ** 2 / (2 * a) + 0.01
    assert peak < rig.profile.upper[-1]


def test_velocity_interface_tracking_error_brakes_and_reports(rig_factory):
    rig = rig_factory(interface='forward_velocity')
    running(rig)
    goal = rig.profile.ready.copy()
    goal[0] += 1.0
    rig.goal = goal
    assert wait_for(lambda: np.abs(rig.v).max() > 0.3, 10.0)
    rig.interface = 'blocked'  # the arm stops following (_advance no longer integrates)
    assert wait_for(lambda: 'tracking error' in rig.status(), 5.0), rig.status()
    assert rig.status().startswith('INVALID_INPUT')
    assert wait_for(lambda: not np.any(rig.commands[-1][1]), 5.0), 'not braked to rest'
    print(f'blocked arm: {rig.status()!r}')


# -- 4. clocks ------------------------------------------------------------------------------------------------


def longest_gap(commands, t0, t1):
    times = [t0] + [c[0] for c in commands if t0 <= c[0] <= t1] + [t1]
    return float(np.diff(times).max())


def test_clock_stall_and_backwards_jump_brake_and_report(rig_factory):
    """Fault: on sim time a 1 s /clock stall gave one command in 1 s, no status and no diagnostics; a 1 s backwards
    jump gave a 1004 ms gap, then status OK."""
    rig = rig_factory(sim_time=True)
    goal = rig.profile.ready.copy()
    goal[0] += 0.3
    running(rig, goal)
    time.sleep(0.5)

    t = time.monotonic()
    rig.clock_stalled = True
    time.sleep(1.0)
    rig.clock_stalled = False
    t_end = time.monotonic()
    gap = longest_gap(rig.commands, t, t_end)
    texts = rig.statuses_since(t)
    diags = [d for s, d in list(rig.diagnostics) if t + STALE <= s <= t_end]
    clock_diag = [d for d in diags if d.status[0].message.startswith('STALE_INPUT: clock')]
    steps = np.abs(np.diff(np.array([c[1] for c in rig.commands if t <= c[0] <= t_end]), axis=0)).max(axis=1)
    print(f'1 s /clock stall: longest command gap {gap * 1e3:.1f} ms, {len(steps) + 1} commands, statuses '
          f'{[s[:40] for s in texts]}, {len(diags)} diagnostics ({len(clock_diag)} STALE_INPUT: clock), final step '
          f'{steps[-1]:.2e} rad')
    assert any(s.startswith('STALE_INPUT: clock') for s in texts), texts
    assert clock_diag, 'no /diagnostics during the stall'
    assert gap < STALE + 0.1, f'the controller went silent for {gap:.3f} s'
    assert steps[-1] == 0.0, 'not braked to a hold during the stall'

    time.sleep(1.0)
    assert wait_for(lambda: rig.status().startswith('OK'), 10.0), rig.status()
    t = time.monotonic()
    rig.jump_clock(-1.0)
    time.sleep(1.5)
    t_end = time.monotonic()
    gap = longest_gap(rig.commands, t, t_end)
    texts = rig.statuses_since(t)
    print(f'1 s backwards /clock jump: longest command gap {gap * 1e3:.1f} ms, statuses {[s[:60] for s in texts]}')
    assert any(s.startswith('STALE_INPUT: clock: time went backwards') for s in texts), texts
    assert gap < 0.1, f'the controller went silent for {gap:.3f} s'
    assert wait_for(lambda: rig.status().startswith('OK'), 10.0), rig.status()


# -- 5. who may command ---------------------------------------------------------------------------------------


def test_a_second_proposal_publisher_is_ignored_and_reported(rig_factory):
    """Fault: a second ~/proposal publisher stamped 0.2 s ahead took over the arm."""
    rig = rig_factory()
    running(rig)
    time.sleep(0.5)
    spoof_goal = rig.profile.ready.copy()
    spoof_goal[0] += 1.0
    t = time.monotonic()
    sent = rig.spoof(spoof_goal, lead=0.2)
    time.sleep(2.0)
    commands = rig.commands_since(t)
    toward = float(max(c[1][0] for c in commands) - rig.profile.ready[0])
    texts = rig.statuses_since(t)
    log = rig.log.read_text()
    followed = sum(1 for a, b in zip(commands, commands[1:]) if b[1][0] > a[1][0] + 1e-9)
    print(f'spoofer: {sent[0]} proposals sent, commands moving toward its goal: {followed}, moved {toward:.6f} rad '
          f'toward it; statuses {texts}')
    assert toward <= 1e-9 and followed == 0, 'a spoofed proposal moved the arm'
    assert any('/spoofer' in s and 'other than /gato/policy_node' in s for s in texts), texts
    assert 'proposal ignored' in log


def test_only_the_configured_proposal_publisher_is_followed(rig_factory):
    rig = rig_factory(proposal_publisher='/gato/planner')
    goal = rig.profile.ready.copy()
    goal[0] += 0.5
    rig.goal = goal
    assert wait_for(lambda: rig.commands, STARTUP), rig.log.read_text()[-2000:]
    assert wait_for(lambda: 'other than /gato/planner' in rig.status(), 10.0), rig.status()
    time.sleep(1.0)
    moved = float(np.abs(np.array([c[1] for c in rig.commands]) - rig.profile.ready).max())
    print(f'proposal_publisher /gato/planner, proposals from /gato/policy_node: moved {moved:.6f} rad')
    assert moved == 0.0


def test_another_publisher_on_the_command_topic_is_warned_about(rig_factory):
    rig = rig_factory()
    running(rig)
    rig.spoof_commands()
    assert wait_for(lambda: 'another node publishes on the command topic' in rig.log.read_text(), 10.0)
    assert wait_for(lambda: any('command_spoofer' in kv.value for _, d in list(rig.diagnostics)
                                for kv in d.status[0].values if kv.key == 'other_command_publishers'), 5.0)
