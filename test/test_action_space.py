"""CartesianActionSpace: actions move the tool as commanded, keep it pointing down, and reject bad input."""

import dataclasses

import numpy as np
import pytest

from gato_ros.core.robots import ACTION_DIM, CartesianActionSpace, GripLatch, Kinematics, load_profile, tool_yaw

SPACE = CartesianActionSpace()
ROBOTS = ['ur5e', 'sawyer']


@pytest.fixture(scope='module', params=ROBOTS)
def kin(request):
    return Kinematics(load_profile(request.param))


def _tilt(rotation):
    """Angle (rad) between the tool z axis and straight down."""
    return float(np.arccos(np.clip(-rotation[2, 2], -1.0, 1.0)))


@pytest.mark.parametrize('axis,sign', [(0, 1), (0, -1), (1, 1), (2, 1), (2, -1)])
def test_linear_action_moves_tool_and_keeps_it_down(kin, axis, sign):
    action = np.zeros(ACTION_DIM)
    action[axis] = sign
    horizon = 0.8
    q0 = kin.profile.ready
    positions = SPACE.proposal(kin, q0, action, now=10.0, horizon=horizon, n_points=17).positions
    start, _ = kin.tool_pose(q0)
    end, rotation = kin.tool_pose(positions[-1])
    expected = np.zeros(3)
    expected[axis] = sign * SPACE.max_linear_speed * horizon
    np.testing.assert_allclose(end - start, expected, atol=0.006)  # 0.12 m commanded
    assert _tilt(rotation) < 0.01
    assert abs(tool_yaw(rotation)) < 0.01


def test_yaw_action_turns_about_world_z_in_place(kin):
    action = np.array([0, 0, 0, 0.5, 0])
    positions = SPACE.proposal(kin, kin.profile.ready, action, now=0.0, horizon=1.0, n_points=21).positions
    start, _ = kin.tool_pose(kin.profile.ready)
    end, rotation = kin.tool_pose(positions[-1])
    assert tool_yaw(rotation) == pytest.approx(0.5 * SPACE.max_yaw_rate, abs=0.02)
    np.testing.assert_allclose(end, start, atol=2e-3)
    assert _tilt(rotation) < 0.01


def test_zero_action_is_stationary(kin):
    q0 = kin.profile.ready
    assert np.abs(SPACE.joint_velocity(kin, q0, np.zeros(ACTION_DIM))).max() < 1e-3
    proposal = SPACE.proposal(kin, q0, np.zeros(ACTION_DIM), now=5.0, horizon=0.5, n_points=6)
    times, positions = proposal.times, proposal.positions
    np.testing.assert_allclose(times, [5.0, 5.1, 5.2, 5.3, 5.4, 5.5])
    np.testing.assert_allclose(positions, np.broadcast_to(q0, positions.shape), atol=1e-3)
    assert positions.shape == (6, kin.n)


def test_tilted_tool_is_turned_back_down(kin):
    q = kin.profile.ready.copy()
    q[-2] += 0.2  # tilt through the last-but-one wrist joint
    _, rotation = kin.tool_pose(q)
    positions = SPACE.proposal(kin, q, np.zeros(ACTION_DIM), now=0.0, horizon=1.0, n_points=21).positions
    _, settled = kin.tool_pose(positions[-1])
    assert _tilt(rotation) > 0.1
    assert _tilt(settled) < 0.5 * _tilt(rotation)


def test_joint_velocity_respects_velocity_limits(kin):
    slow = Kinematics(dataclasses.replace(kin.profile, velocity=np.full(kin.n, 0.05)))
    qd = CartesianActionSpace(max_linear_speed=1.0).joint_velocity(slow, kin.profile.ready, [1, 1, -1, 1, 0])
    assert np.abs(qd).max() == pytest.approx(0.05)


def test_gripper_command():
    assert SPACE.gripper_command([0, 0, 0, 0, 0.2]) == 1.0
    assert SPACE.gripper_command([0, 0, 0, 0, 0.0]) == 0.0
    assert SPACE.gripper_command([0, 0, 0, 0, -1.0]) == 0.0


def test_grip_latch_holds_its_side_inside_the_band():
    """An unsure grip wavering around 0 neither closes open fingers nor drops a held block; a clear one switches."""
    latch = GripLatch(0.5)
    assert [latch(g) for g in (0.3, 0.6, 0.1, -0.4, 0.2, -0.6, 0.45)] == [-1, 1, 1, 1, 1, -1, -1]
    latch(0.9)
    latch.reset()
    assert latch(0.2) == -1.0   # a new episode starts open
    passthrough = GripLatch(0.0)
    assert [passthrough(g) for g in (0.3, -0.2)] == [0.3, -0.2]


@pytest.mark.parametrize('band', [-0.1, 1.0, float('nan'), '0.5'])
def test_grip_latch_rejects_a_bad_band(band):
    with pytest.raises(ValueError, match='grip hysteresis band'):
        GripLatch(band)


@pytest.mark.parametrize('bad', [[np.nan, 0, 0, 0, 0], [0, 0, np.inf, 0, 0], [0, 0, 0, 0]])
def test_bad_actions_are_rejected(kin, bad):
    with pytest.raises(ValueError, match='action'):
        SPACE.joint_velocity(kin, kin.profile.ready, bad)
    with pytest.raises(ValueError, match='action'):
        SPACE.gripper_command(bad)


def test_bad_arguments_are_rejected(kin):
    q = kin.profile.ready.copy()
    with pytest.raises(ValueError, match='n_points'):
        SPACE.proposal(kin, q, np.zeros(ACTION_DIM), now=0.0, horizon=1.0, n_points=1)
    with pytest.raises(ValueError, match='horizon'):
        SPACE.proposal(kin, q, np.zeros(ACTION_DIM), now=0.0, horizon=0.0, n_points=5)
    q[0] = np.nan
    with pytest.raises(ValueError, match='q must be finite'):
        SPACE.joint_velocity(kin, q, np.zeros(ACTION_DIM))
    with pytest.raises(ValueError, match='max_linear_speed'):
        CartesianActionSpace(max_linear_speed=0.0)
