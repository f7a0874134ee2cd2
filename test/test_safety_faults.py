"""Unit tests of the safety filter for the holes issue 14's fault injection found (docs/safety.md, "Measured
state", "Velocity interface", "Link geometry"). Each test fails on the filter before the fix.

Figures are printed (run with -s) so the closing note can quote what was measured.
"""

import functools
import math

import numpy as np
import pytest

from gato_ros.core.robots import Kinematics, load_profile
from gato_ros.core.robots.kinematics import LinkGeometry
from gato_ros.core.safety import Proposal, SafetyConfig, SafetyFilter, SafetyStatus

ROBOTS = ('ur5e', 'sawyer')
DT = 0.002
# Joint goals reached from the ready pose along a straight joint-space path on which the tool stays inside the
# workspace box, while a link goes 0.17-0.21 m below the table (found by a random search over the real URDFs).
ELBOW_DOWN = {'ur5e': [0.197, -0.24, 1.57, 0.159, -2.003, -2.509],
              'sawyer': [-0.15, 0.208, 0.049, 1.143, 1.521, 2.865, 1.75]}


@functools.cache
def robot(name):
    profile = load_profile(name)
    kin = Kinematics(profile)
    return profile, kin, LinkGeometry(kin)


def make(name, links=False, **overrides):
    profile, kin, geometry = robot(name)
    config = SafetyConfig.from_profile(profile, **overrides)
    return SafetyFilter(config, kin.tool_position, links=geometry if links else None), config


def hold(now, goal):
    return Proposal(now, [now, now + 0.2], np.stack([goal, goal]))


def drive(safety, q, goal, ticks, now=10.0, measured=None):
    """Tick with a perfectly tracking arm (measured = commanded unless `measured(i, q)` says otherwise)."""
    outs = []
    qd = np.zeros_like(q)
    for i in range(ticks):
        now += DT
        m = q if measured is None else measured(i, q)
        out = safety.tick(now, m, qd, hold(now, goal), 0.01)
        q, qd = out.positions, out.velocities
        outs.append(out)
    return outs, now


# -- 1. re-sync, reset and the first command ------------------------------------------------------------------


@pytest.mark.parametrize('name', ROBOTS)
def test_first_measured_state_outside_the_urdf_limits_is_refused(name):
    """Fault: a first /joint_states with shoulder_pan = 1e6 made the node command 1e6 rad and hold it."""
    safety, config = make(name)
    q = robot(name)[0].ready.copy()
    q[0] = 1e6
    with pytest.raises(ValueError, match=rf'{config.joint_names[0]} = 1000000.0000 rad is outside its URDF limits'):
        safety.reset(q)
    q[0] = config.upper[0] + config.state_tolerance * 0.5  # inside the tolerance: accepted (sensor noise at a stop)
    safety.reset(q)


@pytest.mark.parametrize('name', ROBOTS)
def test_estop_reset_never_jumps_to_a_glitched_measurement(name):
    """Fault: ~/reset copied a +1 rad glitch of /joint_states into the command: a 1.000 rad jump in one command."""
    safety, config = make(name)
    q = robot(name)[0].ready.copy()
    safety.reset(q)
    now = 10.0
    for estop in (True, False, False):
        now += DT
        safety.tick(now, q, np.zeros_like(q), hold(now, q), 0.01, estop=estop)
    glitch = q.copy()
    glitch[1] += 1.0
    now += DT
    safety.tick(now, glitch, np.zeros_like(q), hold(now, q), 0.01)  # the glitched sample, then ~/reset
    ok, why = safety.request_reset()
    assert not ok
    assert ok or 'refused' in why, why
    np.testing.assert_array_equal(safety.position, q)
    # The filter rejected the glitch as a jump, so the reset is refused either way; with a plausible sample that is
    # farther from the last command than the step bound, the re-sync itself refuses.
    safety.reset(q)
    for estop in (True, False):
        now += DT
        safety.tick(now, q, np.zeros_like(q), hold(now, q), 0.01, estop=estop)
    far = q.copy()
    far[1] += 0.5
    safety._measured = (far, np.zeros_like(q))
    ok, why = safety.request_reset()
    assert not ok and 'resync_tolerance' in why and config.joint_names[1] in why, why
    # Close enough: re-synchronised, and the change of the command stays within the step bound.
    near = q + 0.5 * config.max_step
    now += DT
    safety.tick(now, near, np.zeros_like(q), hold(now, q), 0.01)
    ok, why = safety.request_reset()
    assert ok, why
    jump = float(np.abs(safety.position - q).max())
    print(f'{name}: re-sync jump {jump:.4f} rad, step bound {config.max_step.max():.4f} rad; 1 rad glitch refused')
    assert (np.abs(safety.position - q) <= config.max_step + 1e-12).all()
    now += DT
    out = safety.tick(now, near, np.zeros_like(q), hold(now, near), 0.01)
    assert out.status is SafetyStatus.OK, out.reason


@pytest.mark.parametrize('name', ROBOTS)
def test_measured_state_outside_the_limits_brakes_at_once(name):
    """Fault: a finite absurd value in /joint_states was accepted."""
    safety, config = make(name)
    q = robot(name)[0].ready.copy()
    safety.reset(q)
    goal = q + 0.5
    outs, now = drive(safety, q, goal, 100)
    assert outs[-1].status is SafetyStatus.OK and np.abs(outs[-1].velocities).max() > 0.1
    v0 = outs[-1].velocities
    bad = outs[-1].positions.copy()
    bad[0] = 1e6
    out = safety.tick(now + DT, bad, v0, hold(now + DT, goal), 0.01)
    assert out.status is SafetyStatus.INVALID_INPUT, out.reason
    assert 'outside its URDF limits' in out.reason and config.joint_names[0] in out.reason
    assert np.abs(out.velocities).max() < np.abs(v0).max(), 'not braking on the first bad sample'


@pytest.mark.parametrize('name', ROBOTS)
def test_measured_jump_faster_than_the_joint_can_move_brakes_at_once(name):
    safety, config = make(name)
    q = robot(name)[0].ready.copy()
    safety.reset(q)
    goal = q + 0.5
    outs, now = drive(safety, q, goal, 100)
    v0 = outs[-1].velocities
    jumped = outs[-1].positions.copy()
    jumped[2] += 0.2  # in 2 ms: 100 rad/s
    out = safety.tick(now + DT, jumped, v0, hold(now + DT, goal), 0.01)
    assert out.status is SafetyStatus.INVALID_INPUT and 'faster than its velocity limit' in out.reason, out.reason
    assert config.joint_names[2] in out.reason
    assert np.abs(out.velocities).max() < np.abs(v0).max()
    # The next plausible sample is followed again.
    out = safety.tick(now + 2 * DT, out.positions, out.velocities, hold(now + 2 * DT, goal), 0.01)
    assert out.status is SafetyStatus.OK, out.reason


def test_fault_from_the_caller_brakes_with_its_reason():
    safety, _ = make('ur5e')
    q = robot('ur5e')[0].ready.copy()
    safety.reset(q)
    outs, now = drive(safety, q, q + 0.5, 100)
    v0 = outs[-1].velocities
    out = safety.tick(now + DT, outs[-1].positions, v0, hold(now + DT, q + 0.5), 0.01,
                      fault=(SafetyStatus.INVALID_INPUT, '/joint_states rejected: duplicate joint name(s)'))
    assert out.status is SafetyStatus.INVALID_INPUT and out.reason.startswith('/joint_states rejected')
    assert np.abs(out.velocities).max() < np.abs(v0).max()
    # A clock fault: the tick time does not advance, the filter brakes at the nominal period with the caller's reason.
    out2 = safety.tick(now + DT, outs[-1].positions, v0, None, 0.01,
                       fault=(SafetyStatus.STALE_INPUT, 'clock: no /clock progress for 0.25 s'))
    assert out2.status is SafetyStatus.STALE_INPUT and out2.reason.startswith('clock')
    assert np.abs(out2.velocities).max() < np.abs(out.velocities).max()


# -- 2. velocity interface ------------------------------------------------------------------------------------


class VelocityArm:
    """An ideal arm behind a forward velocity controller: it integrates the last velocity command over the real
    time between commands (it keeps moving while the safety loop stalls)."""

    def __init__(self, name, track, rng, tracking_error_limit=0.1):
        profile = robot(name)[0]
        overrides = dict(track_measured=True, tracking_error_limit=tracking_error_limit) if track else {}
        # The node's settings at 250 Hz: max_dt = 2.5 periods.
        self.safety, self.config = make(name, dt=0.004, max_dt=0.01, **overrides)
        self.q = profile.ready.copy()
        self.q[-1] = self.config.position_bounds[1][-1] - 0.6
        self.safety.reset(self.q)
        self.v = np.zeros_like(self.q)
        self.now = 10.0
        self.rng = rng
        self.outs = []
        self.trace = [self.q.copy()]

    def run(self, seconds, goal, stall_at=None, stall=0.0, follow=True):
        end = self.now + seconds
        while self.now < end:
            interval = self.rng.uniform(0.002, 0.01)  # a loaded machine: up to max_dt (2.5 periods) late,
            if self.rng.random() < 0.15:              # and often later still
                interval = self.rng.uniform(0.01, 0.05)
            if stall_at is not None and self.now >= stall_at:
                interval, stall_at = stall, None
            self.q = self.q + self.v * interval if follow else self.q  # the controller repeats the last command
            self.now += interval
            self.trace.append(self.q.copy())
            out = self.safety.tick(self.now, self.q, self.v, Proposal(self.now, [self.now, self.now + 0.2],
                                                                       np.stack([goal, goal])), 0.0)
            self.v = out.velocities
            self.outs.append(out)
        return self.outs

    def excess(self):
        upper = self.config.position_bounds[1][-1]
        return float(np.array(self.trace)[:, -1].max() - upper)


@pytest.mark.parametrize('name', ROBOTS)
def test_velocity_interface_keeps_the_real_arm_inside_the_bound(name):
    """Fault: driving wrist_3 into its bound through forward_velocity ended 0.186 rad past it (no fault injected),
    because the filter integrated its own model and never looked at the measured position."""
    def run(track):
        arm = VelocityArm(name, track, np.random.default_rng(3))
        goal = arm.q.copy()
        goal[-1] += 2.0
        arm.run(3.0, goal)
        return arm

    before, after = run(False), run(True)
    print(f'{name} velocity interface, wrist into its bound: excess over the bound {before.excess():+.4f} rad '
          f'(model only) -> {after.excess():+.4f} rad (measured)')
    assert before.excess() > 0.05  # the hole, reproduced with the measured arm
    assert after.excess() <= 0.01 and after.excess() < 0.1 * before.excess()
    assert after.outs[-1].status is SafetyStatus.JOINT_BOUND, after.outs[-1].reason


@pytest.mark.parametrize('name', ROBOTS)
def test_velocity_interface_stall_brakes_from_where_the_arm_really_is(name):
    """Fault: a 0.3 s stall of the safety process left the arm 1.97 rad past the bound. Nothing can stop an arm
    during a stall of the process that commands it (docs/safety.md); afterwards the filter must brake from where
    the arm really is, not from its own model."""
    def run(track):
        arm = VelocityArm(name, track, np.random.default_rng(4))
        goal = arm.q.copy()
        goal[-1] += 2.0
        while arm.q[-1] < arm.config.position_bounds[1][-1] - 0.45:  # at speed toward the bound
            arm.run(0.002, goal)
        speed, start = abs(arm.v[-1]), len(arm.trace)
        arm.run(0.001, goal, stall_at=arm.now, stall=0.3)
        after_stall = arm.trace[-1][-1]
        first = arm.outs[-1]
        arm.run(2.0, goal)
        return arm, speed, after_stall, first, np.array(arm.trace)[start:, -1].max()

    _, _, _, _, peak_before = run(False)
    arm, speed, after_stall, first, peak = run(True)
    upper, limit = arm.config.position_bounds[1][-1], arm.config.upper[-1]
    print(f'{name} velocity interface, 0.3 s stall at {speed:.3f} rad/s: excess over the bound '
          f'{peak_before - upper:+.4f} rad (model only) -> {peak - upper:+.4f} rad (measured), '
          f'over the URDF limit {peak - limit:+.4f} rad')
    assert first.status is not SafetyStatus.OK, 'kept accelerating after the stall'
    # From the tick after the stall the arm brakes at once: no farther than one stop from the speed it had (plus
    # what the late ticks add while the command steps down).
    assert peak <= after_stall + speed ** 2 / (2 * arm.config.acceleration[-1]) + speed * 0.05
    assert peak < peak_before
    assert not arm.outs[-1].velocities.any()


@pytest.mark.parametrize('name', ROBOTS)
def test_velocity_interface_tracking_error_brakes_and_reports(name):
    arm = VelocityArm(name, True, np.random.default_rng(5))
    goal = arm.q.copy()
    goal[0] += 0.8
    arm.run(0.4, goal)
    assert np.abs(arm.v).max() > 0.3
    outs = arm.run(0.6, goal, follow=False)  # the controller stopped following (blocked arm, inactive controller)
    faulted = [o for o in outs if 'tracking error' in o.reason]
    assert faulted and faulted[0].status is SafetyStatus.INVALID_INPUT, [o.reason for o in outs[-3:]]
    assert np.abs(outs[-1].velocities).max() == 0.0, 'not braked to rest'
    assert outs[-1].status is SafetyStatus.INVALID_INPUT and 'tracking error' in outs[-1].reason, 'not latched'
    error = float(faulted[0].reason.split(' is ')[1].split(' rad')[0])
    print(f'{name} blocked arm: tracking error reported at {error:.4f} rad (limit 0.1 rad), braked to rest')
    ok, why = arm.safety.request_reset()
    assert ok, why
    outs = arm.run(0.2, goal)
    assert outs[-1].status is SafetyStatus.OK, outs[-1].reason


# -- 3. link geometry -----------------------------------------------------------------------------------------


@pytest.mark.parametrize('name', ROBOTS)
def test_link_geometry_matches_the_urdf_shapes(name):
    """The extents come from pinocchio's collision model: compare with points sampled on the shapes' surfaces."""
    import pinocchio as pin

    profile, kin, geometry = robot(name)
    model = pin.buildGeomFromUrdf(kin.model, str(profile.urdf_path), pin.COLLISION)
    data = model.createData()
    rng = np.random.default_rng(0)
    worst = 0.0
    for _ in range(20):
        q = profile.ready + rng.normal(0.0, 1.0, profile.ready.size)
        _, lo, hi = geometry(q)
        pin.forwardKinematics(kin.model, kin.data, kin._q(q))
        pin.updateGeometryPlacements(kin.model, kin.data, model, data)
        for obj, placement in zip(model.geometryObjects, data.oMg):
            if obj.parentJoint == 0:
                continue
            shape, kind = obj.geometry, type(obj.geometry).__name__
            u = rng.uniform(-1.0, 1.0, (4000, 3))
            if kind == 'Box':
                local = u * np.asarray(shape.halfSide)
            else:  # cylinder: sample its rim and caps
                angle = rng.uniform(0, 2 * np.pi, 4000)
                local = np.stack([shape.radius * np.cos(angle), shape.radius * np.sin(angle),
                                  shape.halfLength * np.sign(u[:, 2])], axis=1)
            world = local @ placement.rotation.T + placement.translation
            mine = geometry.owner == geometry.names.index(obj.name)
            assert (world.min(axis=0) >= lo[mine].min(axis=0) - 1e-9).all(), obj.name
            assert (world.max(axis=0) <= hi[mine].max(axis=0) + 1e-9).all(), obj.name
            worst = max(worst, float(np.max(world.min(axis=0) - lo[mine].min(axis=0))))
    assert worst < 0.01  # tight, not just conservative


@pytest.mark.parametrize('name', ROBOTS)
def test_links_stay_above_the_table_while_the_tool_does(name):
    """Fault: an elbow-down configuration put the forearm 0.186 m below the table plane, tool at z = 0.005, OK."""
    profile, kin, geometry = robot(name)
    goal = np.array(ELBOW_DOWN[name])

    def lowest_link(links):
        safety, config = make(name, links=links)
        q = profile.ready.copy()
        safety.reset(q)
        outs, _ = drive(safety, q, goal, 2000)
        lows = [geometry(o.positions)[1][:, 2].min() for o in outs]
        tools = [kin.tool_position(o.positions)[2] for o in outs]
        return min(lows), min(tools), outs[-1], config

    low_before, _, _, config = lowest_link(False)
    low_after, tool_after, last, _ = lowest_link(True)
    table = config.table_height + config.table_clearance
    print(f'{name} elbow-down: lowest link {low_before:+.4f} m (tool only) -> {low_after:+.4f} m (links); '
          f'table + clearance {table} m')
    assert low_before < table - 0.05  # the hole, reproduced
    assert low_after >= table - 1e-4
    assert last.status is SafetyStatus.WORKSPACE_BOUND and last.reason.startswith('link '), last.reason
    assert 'table plane' in last.reason


def test_link_box_config_is_validated():
    with pytest.raises(ValueError, match='link_box_max'):
        make('ur5e', link_box_min=[-1.0, -1.0, 0.0], link_box_max=[1.0, 1.0, 0.001])
    with pytest.raises(ValueError, match='link_box_min'):
        make('ur5e', link_box_min=[math.nan, 0.0, 0.0])
