"""Unit tests of the safety filter: one table row per status code (both robots), plus the contract details
(e-stop reset, braking time, direction-keeping speed limit, speed scaling, a start outside the box, Proposal,
SafetyConfig validation)."""

import functools
import math

import numpy as np
import pytest

from gato_ros.core.robots import Kinematics, load_profile
from gato_ros.core.safety import Proposal, SafetyConfig, SafetyFilter, SafetyStatus

ROBOTS = ('ur5e', 'sawyer')
DT = 0.002


@functools.cache
def robot(name):
    profile = load_profile(name)
    return profile, Kinematics(profile), SafetyConfig.from_profile(profile)


class Harness:
    """A filter driven at 500 Hz with a perfectly tracking arm (measured = commanded)."""

    def __init__(self, name, start=None, **overrides):
        self.profile, self.kin, config = robot(name)
        self.config = SafetyConfig.from_profile(self.profile, **overrides) if overrides else config
        self.filter = SafetyFilter(self.config, self.kin.tool_position)
        self.q = self.profile.ready.copy() if start is None else np.asarray(start, dtype=float)
        self.qd = np.zeros_like(self.q)
        self.now = 10.0
        self.filter.reset(self.q)
        self.out = self.tick(goal=self.q)  # first tick after reset: nothing integrated

    def hold_goal(self, goal):
        return Proposal(self.now, [self.now, self.now + 0.2], np.stack([goal, goal]))

    def tick(self, goal=None, proposal='goal', **kwargs):
        self.now += kwargs.pop('dt', DT)
        if proposal == 'goal':
            proposal = self.hold_goal(self.q if goal is None else goal)
        kwargs.setdefault('observation_age', 0.01)
        out = self.filter.tick(self.now, kwargs.pop('q', self.q), kwargs.pop('qd', self.qd), proposal, **kwargs)
        self.q, self.qd, self.out = out.positions, out.velocities, out
        return out

    def run(self, ticks, **kwargs):
        return [self.tick(**kwargs) for _ in range(ticks)]

    def tool_push(self, direction, distance=0.6):
        """Joint goal that moves the tool `distance` along `direction` (linearised at the current q)."""
        step = np.linalg.lstsq(self.kin.jacobian(self.q)[:3], np.asarray(direction) * distance, rcond=None)[0]
        return self.q + step


def moving(h, ticks=100):
    """Bring the arm to speed first, so the fault under test has a velocity to brake."""
    goal = h.q + 0.5 * np.sign(np.arange(h.q.size) % 2 - 0.5)
    h.run(ticks, goal=goal)
    assert np.abs(h.qd).max() > 0.1
    return goal


def last_joint_push(h):
    """Drive the last joint (it spins the tool about its own axis: the tool does not move) past its upper bound."""
    hi = h.config.position_bounds[1][-1]
    h.q[-1] = hi - 0.3
    h.filter.reset(h.q)
    goal = h.q.copy()
    goal[-1] = hi + 1.0
    return h.run(600, goal=goal)


def table_push(h):
    return h.run(800, goal=h.tool_push([0.0, 0.0, -1.0]))


def statuses(outs):
    return [o.status for o in outs]


def first_non_ok(outs):
    return next(o for o in outs if o.status is not SafetyStatus.OK)


def bad_tick_time(h):
    moving(h)
    return h.tick(dt=-0.001)


CASES = {  # status -> list of (label, scenario returning the output to check, substring of the reason)
    SafetyStatus.OK: [('hold still', lambda h: h.tick(), ''),
                      ('follow a small move', lambda h: h.run(50, goal=h.q + 0.05)[-1], '')],
    SafetyStatus.DECELERATE_FOR_JOINT_BOUND: [
        ('last joint toward its upper bound', lambda h: first_non_ok(last_joint_push(h)), 'upper bound')],
    SafetyStatus.JOINT_BOUND: [('last joint at its upper bound', lambda h: last_joint_push(h)[-1], 'holding')],
    SafetyStatus.DECELERATE_FOR_WORKSPACE: [('tool toward the table', lambda h: first_non_ok(table_push(h)), 'table')],
    SafetyStatus.WORKSPACE_BOUND: [('tool on the table plane', lambda h: table_push(h)[-1], 'holding'),
                                   ('tool at the x_max face', lambda h: h.run(800, goal=h.tool_push([1, 0, 0]))[-1],
                                    'x_max')],
    SafetyStatus.STALE_INPUT: [
        ('stale observation', lambda h: h.tick(observation_age=0.2), 'observation age'),
        ('no proposal', lambda h: h.tick(proposal=None), 'no proposal'),
        ('old proposal', lambda h: h.tick(proposal=Proposal(h.now - 0.5, [h.now], [h.q])), 'proposal age'),
        ('times out of order', lambda h: h.tick(proposal=Proposal(h.now, [h.now + 0.1, h.now], [h.q, h.q])),
         'not increasing'),
        ('times in the past', lambda h: h.tick(proposal=Proposal(h.now, [h.now - 1.0], [h.q])), 'past'),
        ('stamp older than the last one', lambda h: h.tick(proposal=Proposal(h.now - 0.05, [h.now], [h.q])),
         'older than'),
    ],
    SafetyStatus.ESTOP: [('e-stop pressed', lambda h: h.tick(estop=True), 'e-stop asserted'),
                         ('e-stop released, still latched', lambda h: (h.tick(estop=True), h.tick())[-1], 'latched')],
    SafetyStatus.INVALID_INPUT: [
        ('NaN in q', lambda h: h.tick(q=np.full(h.q.size, np.nan)), 'measured q'),
        ('qd of the wrong length', lambda h: h.tick(qd=np.zeros(h.q.size + 1)), 'measured qd'),
        ('proposal of the wrong length', lambda h: h.tick(proposal=Proposal(h.now, [h.now], [np.zeros(3)])),
         'joints'),
        ('inf in the proposal', lambda h: h.tick(goal=np.full(h.q.size, np.inf)), 'non-finite'),
        ('speed scale above 1', lambda h: h.tick(speed_scale=1.5), 'speed_scale'),
        ('NaN speed scale', lambda h: h.tick(speed_scale=math.nan), 'speed_scale'),
        ('NaN observation age', lambda h: h.tick(observation_age=math.nan), 'observation_age'),
        ('tick time going backwards', bad_tick_time, 'not after the previous tick'),
    ],
}
ROWS = [(status, label, scenario, reason) for status, rows in CASES.items() for label, scenario, reason in rows]


def test_every_status_has_a_row():
    assert set(CASES) == set(SafetyStatus)


@pytest.mark.parametrize('name', ROBOTS)
@pytest.mark.parametrize('status, label, scenario, reason', ROWS, ids=[f'{r[0].name}-{r[1]}' for r in ROWS])
def test_status_codes(name, status, label, scenario, reason):
    h = Harness(name)
    out = scenario(h)
    assert out.status is status, f'{label}: {out.status.name} ({out.reason})'
    assert reason in out.reason, out.reason
    assert (out.reason == '') == (status is SafetyStatus.OK)
    lo, hi = h.config.position_bounds
    box_min, box_max = h.config.tool_bounds
    x = h.kin.tool_position(out.positions)
    assert (lo <= out.positions).all() and (out.positions <= hi).all()
    assert (box_min - 1e-9 <= x).all() and (x <= box_max + 1e-9).all()
    assert out.status.level == (0 if status is SafetyStatus.OK else
                                2 if status in (SafetyStatus.ESTOP, SafetyStatus.INVALID_INPUT) else 1)


@pytest.mark.parametrize('name', ROBOTS)
def test_hold_statuses_brake_at_the_acceleration_limit_without_extrapolating(name):
    for fault in (dict(observation_age=0.5), dict(proposal=None), dict(estop=True), dict(speed_scale=-1.0)):
        h = Harness(name)
        moving(h)
        a = h.config.acceleration
        v0 = h.qd.copy()
        limit = math.ceil(float((np.abs(v0) / a).max()) / DT) + 1
        outs = [h.tick(**fault) for _ in range(limit)]
        assert outs[-1].velocities.tolist() == [0.0] * v0.size, fault
        speeds = [np.abs(o.velocities).max() for o in outs]
        assert all(s1 <= s0 for s0, s1 in zip(speeds, speeds[1:])), f'{fault}: speed grew while braking'
        # Common braking keeps the path: the velocity stays parallel to where it was heading.
        v = outs[0].velocities
        np.testing.assert_allclose(v / np.linalg.norm(v), v0 / np.linalg.norm(v0), atol=1e-12)
        # The slowest-to-stop joint brakes at the full acceleration limit.
        j = int(np.argmax(np.abs(v0) / a))
        assert abs(abs(v0[j]) - abs(v[j]) - a[j] * DT) < 1e-9


def test_estop_reset_only_at_rest_and_resyncs_to_measured():
    h = Harness('ur5e')
    moving(h)
    assert h.filter.request_reset() == (True, 'no e-stop latched')
    h.tick(estop=True)
    ok, why = h.filter.request_reset()
    assert not ok and 'still asserted' in why
    h.tick()
    ok, why = h.filter.request_reset()
    assert not ok and 'braking' in why
    h.run(300)
    assert h.out.status is SafetyStatus.ESTOP and not h.qd.any()
    rested_elsewhere = h.q + 0.01
    h.tick(q=rested_elsewhere, qd=np.full(h.q.size, 0.05))
    ok, why = h.filter.request_reset()
    assert not ok and 'moving' in why
    h.tick(q=rested_elsewhere, qd=np.full(h.q.size, 0.001))
    ok, why = h.filter.request_reset()
    assert ok, why
    np.testing.assert_array_equal(h.filter.position, rested_elsewhere)
    h.q = rested_elsewhere
    assert h.tick().status is SafetyStatus.OK


ANYWHERE = dict(workspace_min=[-2.0, -2.0, -2.0], workspace_max=[2.0, 2.0, 2.0], table_height=-2.0)


def test_speed_limit_scales_all_joints_together():
    h = Harness('ur5e', **ANYWHERE)
    direction = np.array([1.0, -0.5, 0.25, 0.0, 0.0, 0.0])
    outs = h.run(600, goal=h.q + 4.0 * direction)
    top = max(outs, key=lambda o: np.abs(o.velocities).max()).velocities
    assert np.abs(top).max() == pytest.approx(h.config.speed_limit[0], rel=1e-9)
    np.testing.assert_allclose(top / np.linalg.norm(top), direction / np.linalg.norm(direction), atol=1e-9)


@pytest.mark.parametrize('scale', [0.25, 0.5])
def test_speed_scale_multiplies_speed_and_acceleration(scale):
    full, scaled = Harness('ur5e', **ANYWHERE), Harness('ur5e', **ANYWHERE)
    goal = full.q.copy()
    goal[0] += 5.0
    v_full = np.array([full.tick(goal=goal).velocities[0] for _ in range(1000)])
    v_scaled = np.array([scaled.tick(goal=goal, speed_scale=scale).velocities[0] for _ in range(1000)])
    assert v_full.max() == pytest.approx(full.config.speed_limit[0], rel=1e-9)
    assert v_scaled.max() == pytest.approx(scale * v_full.max(), rel=1e-9)
    assert np.diff(v_scaled).max() <= scale * full.config.acceleration[0] * DT + 1e-12
    zero = Harness('ur5e')
    assert not any(zero.tick(goal=goal, speed_scale=0.0).velocities.any() for _ in range(50))


def test_start_outside_the_workspace_only_allows_motion_back_in():
    h = Harness('ur5e')
    h.run(800, goal=h.tool_push([0.0, 0.0, -1.0]))
    low = h.q.copy()
    table = h.config.tool_bounds[0][2]
    start = low + np.linalg.lstsq(h.kin.jacobian(low)[:3], [0.0, 0.0, -0.01], rcond=None)[0]
    below = Harness('ur5e', start=start)
    z0 = h.kin.tool_position(start)[2]
    assert z0 < table
    zs = [h.kin.tool_position(o.positions)[2] for o in below.run(300, goal=below.tool_push([0.0, 0.0, -1.0]))]
    assert min(zs) >= z0 - 1e-12 and below.out.status is SafetyStatus.WORKSPACE_BOUND
    zs = [h.kin.tool_position(o.positions)[2] for o in below.run(300, goal=below.tool_push([0.0, 0.0, 1.0], 0.1))]
    assert zs[-1] > table
    assert all(z1 >= z0 - 1e-12 for z0, z1 in zip(zs, zs[1:]) if z0 < table), 'went deeper below the table'


def test_late_tick_integrates_at_most_max_dt():
    h = Harness('ur5e')
    moving(h)
    p, v = h.q.copy(), h.qd.copy()
    out = h.tick(dt=1.0)
    np.testing.assert_allclose(out.positions, p + out.velocities * h.config.max_dt, atol=1e-12)
    assert (np.abs(out.velocities - v) <= h.config.acceleration * h.config.max_dt + 1e-12).all()


def test_tick_before_reset_raises():
    _, kin, config = robot('ur5e')
    with pytest.raises(RuntimeError, match='reset'):
        SafetyFilter(config, kin.tool_position).tick(0.0, np.zeros(6), np.zeros(6), None, 0.0)
    with pytest.raises(ValueError, match='6 finite'):
        SafetyFilter(config, kin.tool_position).reset([0.0, np.nan, 0, 0, 0, 0])


def test_proposal_interpolates_holds_and_never_extrapolates():
    p = Proposal(1.0, [1.0, 2.0, 4.0], [[0.0, 0.0], [1.0, -1.0], [3.0, 1.0]])
    np.testing.assert_allclose(p.sample(1.5), [0.5, -0.5])
    np.testing.assert_allclose(p.sample(3.0), [2.0, 0.0])
    np.testing.assert_allclose(p.sample(0.0), [0.0, 0.0])
    np.testing.assert_allclose(p.sample(100.0), [3.0, 1.0])
    with pytest.raises(ValueError, match='positions'):
        Proposal(0.0, [0.0, 1.0], [[0.0, 0.0]])
    with pytest.raises(ValueError, match='times'):
        Proposal(0.0, [], np.zeros((0, 2)))
    with pytest.raises(ValueError):
        p.positions[0, 0] = 5.0


@pytest.mark.parametrize('override, message', [
    (dict(margin=-0.1), 'SafetyConfig.margin'),
    (dict(margin=4.0), 'SafetyConfig.margin'),
    (dict(stale_timeout=0.0), 'SafetyConfig.stale_timeout'),
    (dict(max_dt=0.001), 'SafetyConfig.max_dt'),
    (dict(velocity=[1.0] * 5), 'SafetyConfig.velocity'),
    (dict(acceleration=[5.0, 5.0, -1.0, 5.0, 5.0, 5.0]), r'SafetyConfig.acceleration\[elbow_joint\]'),
    (dict(max_step=np.nan), r'SafetyConfig.max_step\[shoulder_pan_joint\]'),
    (dict(table_clearance=1.0), r'SafetyConfig.workspace_max\[z\]'),
    (dict(workspace_min=[0.0, 0.0]), 'SafetyConfig.workspace_min'),
    (dict(speed=1.0), 'no field'),
])
def test_config_validation_names_the_field(override, message):
    with pytest.raises(ValueError, match=message):
        SafetyConfig.from_profile(robot('ur5e')[0], **override)


def test_config_from_profile_and_step_bound():
    profile = robot('sawyer')[0]
    config = SafetyConfig.from_profile(profile, max_step=0.005)
    assert config.margin == profile.margin and config.stale_timeout == 0.1
    np.testing.assert_array_equal(config.speed_limit, np.minimum(profile.velocity, 0.005 / config.max_dt))
    np.testing.assert_array_equal(SafetyConfig.from_profile(profile).max_step, profile.velocity * 0.01)


def test_reset_starts_a_new_episode_whose_clock_restarts():
    """Sim time restarts at 0 each episode: after reset, fresh proposals at earlier times are followed again."""
    h = Harness('ur5e')
    moving(h, ticks=50)
    h.filter.reset(h.q)
    h.now = 0.0
    goal = h.q + 0.05
    outs = h.run(50, goal=goal)
    assert outs[-1].status == SafetyStatus.OK, outs[-1].reason
    assert np.abs(h.q - goal).max() < np.abs(0.05) - 1e-3  # it moved towards the new goal

