"""StackingSim: scene from the URDFs, cameras, servo tracking, block spawning and the stacking success rule."""

import math

import mujoco
import numpy as np
import pytest

from gato_ros.core.robots import Kinematics
from gato_ros.core.sim import SimConfig, StackingSim
from gato_ros.core.sim.task import cube_yaw, sample_block_xy, stack_reason, wrap_quarter

ROBOTS = ('ur5e', 'sawyer')


@pytest.fixture(scope='module', params=ROBOTS)
def sim(request):
    sim = StackingSim(SimConfig(robot=request.param))
    yield sim
    sim.close()


def place(sim, color, position, yaw=0.0):
    """Put a block at `position` with `yaw`, at rest."""
    adr, dof = sim._block_qpos[color], sim._block_dof[color]
    sim.data.qpos[adr:adr + 7] = [*position, math.cos(yaw / 2), 0, 0, math.sin(yaw / 2)]
    sim.data.qvel[dof:dof + 6] = 0


def hold(sim, seconds, gripper=0.0):
    for _ in range(round(seconds / 0.01)):
        sim.step(sim.profile.ready, gripper, 0.01)


@pytest.mark.parametrize('field, value', [('image_size', 8), ('cameras', ('top',)), ('cameras', ('wrist', 'wrist')),
                                          ('physics_hz', 10),
                                          ('task', ('red', 'red')), ('task', ('red', 'pink')),
                                          ('spawn_x', (0.6, 0.4)), ('friction', 0.0), ('start_offset', (0.2, 0, 0))])
def test_config_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f'SimConfig.{field}='):
        SimConfig(**{field: value})


def test_scene_matches_the_urdf_kinematics(sim):
    state = sim.state()
    assert state.gripper == 0.0 and np.allclose(state.finger_q, 0.04)  # open
    assert sim.model.opt.timestep == pytest.approx(0.002)
    assert sim.joint_names == (*sim.profile.joint_names, *sim.profile.gripper_joint_names)
    kin = Kinematics(sim.profile)
    rng = np.random.default_rng(1)
    for _ in range(3):  # MuJoCo's tool body and pinocchio's tool frame agree away from the ready pose too
        q = sim.profile.ready + rng.uniform(-0.3, 0.3, len(sim.profile.ready))
        sim.data.qpos[sim._arm_qpos] = q
        mujoco.mj_kinematics(sim.model, sim.data)
        np.testing.assert_allclose(sim.state().tool_pos, kin.tool_position(q), atol=1e-6)
    sim.reset(0)


def test_the_arm_starts_at_the_seeds_offset_from_ready_pointing_down(sim):
    kin = Kinematics(sim.profile)
    ready_point, ready_rotation = kin.tool_pose(sim.profile.ready)
    limit = np.array(sim.config.start_offset)
    offsets = []
    for seed in range(8):
        sim.reset(seed)
        point, rotation = kin.tool_pose(sim.state().q)
        offsets.append(point - ready_point)
        assert np.all(np.abs(offsets[-1]) <= limit + 1e-6), seed
        np.testing.assert_allclose(rotation, ready_rotation, atol=1e-5)
        sim.reset(seed)
        np.testing.assert_allclose(kin.tool_pose(sim.state().q)[0], point)   # the seed decides it
    assert np.std(offsets, axis=0).min() > 0.01          # it does vary
    fixed = StackingSim(SimConfig(robot=sim.config.robot, start_offset=(0.0, 0.0, 0.0)))
    np.testing.assert_allclose(fixed.state().q, sim.profile.ready, atol=1e-9)
    fixed.close()
    sim.reset(0)


def test_blocks_spawn_from_the_seed(sim):
    def positions(seed):
        sim.reset(seed)
        return np.array([b.position for b in sim.state().blocks.values()])
    first = positions(3)
    np.testing.assert_array_equal(first, positions(3))
    assert not np.allclose(first, positions(4))
    for seed in range(5):
        p = positions(seed)
        assert np.all((p[:, 0] >= 0.40) & (p[:, 0] <= 0.65) & (np.abs(p[:, 1]) <= 0.20))
        np.testing.assert_allclose(p[:, 2], 0.025)
        assert min(np.linalg.norm(p[i, :2] - p[j, :2]) for i, j in ((0, 1), (0, 2), (1, 2))) >= 0.10
    hold(sim, 0.2)  # blocks rest: nothing explodes out of the initial contact
    assert np.allclose([b.position[2] for b in sim.state().blocks.values()], 0.025, atol=1e-3)


def test_spawn_sampling_gives_up_with_a_clear_error():
    with pytest.raises(ValueError, match='cannot place 3 blocks'):
        sample_block_xy(np.random.default_rng(0), 3, (0, 0.1), (0, 0.1), 0.2, max_tries=100)


def test_cameras_see_the_blocks_from_two_sides(sim):
    images = sim.render()
    assert set(images) == {'front_left', 'front_right'}
    for rgb in images.values():
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        assert rgb.std() > 20  # not a blank frame
        red = (rgb[..., 0] > 150) & (rgb[..., 1] < 80) & (rgb[..., 2] < 80)
        blue = (rgb[..., 2] > 150) & (rgb[..., 0] < 80)
        assert red.sum() >= 3 and blue.sum() >= 3, 'red and blue blocks visible'
    assert np.abs(images['front_left'].astype(int) - images['front_right'].astype(int)).mean() > 5


def test_position_servo_tracks_steps_and_ramps(sim):
    sim.reset(0)
    ready = np.array(sim.profile.ready)
    target = ready + 0.05
    for _ in range(150):  # 0.3 s after a 0.05 rad step on every joint
        sim.step(target, 0.0, 0.002)
    q, qd = sim.joint_positions()
    assert np.abs(q - target).max() < 0.002 and np.abs(qd).max() < 0.05
    # A 0.5 rad/s ramp streamed at 500 Hz, as the safety filter sends it: a few mrad behind at most.
    for k in range(1, 201):
        sim.step(target + 0.5 * 0.002 * k, 0.0, 0.002)
    q, qd = sim.joint_positions()
    assert np.abs(q - (target + 0.2)).max() < 0.004
    np.testing.assert_allclose(qd, 0.5, atol=0.05)
    sim.reset(0)


def test_gripper_closes_and_opens(sim):
    sim.reset(0)
    hold(sim, 0.5, gripper=1.0)
    assert sim.state().gripper > 0.95
    hold(sim, 0.5, gripper=0.0)
    assert sim.state().gripper < 0.05


def test_step_rejects_bad_commands(sim):
    n = len(sim.profile.joint_names)
    with pytest.raises(ValueError, match='shape'):
        sim.step(np.zeros(n + 1), 0.0, 0.002)
    with pytest.raises(ValueError, match='not finite'):
        sim.step(np.full(n, np.nan), 0.0, 0.002)
    with pytest.raises(ValueError, match='duration'):
        sim.step(sim.profile.ready, 0.0, 0.0)


def test_hand_placed_stack_succeeds_after_the_hold_time(sim):
    sim.reset(0)
    place(sim, 'blue', (0.55, 0.1, 0.025), yaw=0.3)
    place(sim, 'red', (0.555, 0.1, 0.0755), yaw=0.1)
    hold(sim, 0.5)
    status = sim.task_status()
    assert status.stacked and not status.success and 0.4 < status.stacked_for < 0.6
    hold(sim, 0.6)
    assert sim.task_status().success
    sim.reset(0)
    assert not sim.task_status().success  # the latch is per episode


@pytest.mark.parametrize('red, reason', [((0.45, -0.1, 0.025), 'A is not above B'),
                                          ((0.55, 0.1, 0.13), 'A bottom is not on B top')])
def test_no_success_without_a_stack(sim, red, reason):
    sim.reset(0)
    place(sim, 'blue', (0.55, 0.1, 0.025))
    place(sim, 'red', red)
    sim.step(sim.profile.ready, 0.0, 0.002)
    status = sim.task_status()
    assert not status.stacked and not status.success and status.reason == reason


def test_stack_rule():
    level, size = (1.0, 0, 0, 0), 0.05
    tilted = (math.cos(0.2), math.sin(0.2), 0, 0)  # 23 degrees about x
    b = (0.5, 0.0, 0.025)
    assert stack_reason((0.5, 0.01, 0.075), level, 0.0, b, level, size, False) == ''
    assert stack_reason((0.5, 0.0, 0.075), level, 0.0, b, level, size, True) == 'A is still held'
    assert stack_reason((0.5, 0.0, 0.075), level, 0.2, b, level, size, False) == 'A is moving'
    assert stack_reason((0.5, 0.0, 0.075), tilted, 0.0, b, level, size, False) == 'A or B is not level'
    assert stack_reason((0.5, 0.03, 0.075), level, 0.0, b, level, size, False) == 'A is not above B'


def test_cube_yaw_is_modulo_a_quarter_turn():
    for yaw in (0.3, 0.3 + math.pi / 2, 0.3 - math.pi, -0.7):
        quat = (math.cos(yaw / 2), 0, 0, math.sin(yaw / 2))
        assert cube_yaw(quat) == pytest.approx(wrap_quarter(yaw))
    assert wrap_quarter(0.3 + math.pi / 2) == pytest.approx(0.3)


@pytest.mark.parametrize('robot', ROBOTS)
def test_wrist_camera_rides_on_the_tool_and_sees_past_the_fingertips(robot):
    from gato_ros.core.sim.scene import CameraProjections

    config = SimConfig(robot=robot, cameras=('front_left', 'wrist'), start_offset=(0.0, 0.0, 0.0))
    sim = StackingSim(config)
    try:
        ready = np.array(sim.profile.ready)
        moved = ready.copy()
        moved[0] += 0.3
        projections = CameraProjections(config, sim.profile)(np.stack([ready, moved]))
        np.testing.assert_allclose(projections['front_left'][0], projections['front_left'][1])  # fixed in the world
        assert np.abs(projections['wrist'][0] - projections['wrist'][1]).max() > 1.0           # moves with the arm
        # 5 cm past the fingertips, straight down at the ready pose, lands inside the wrist image, near its middle
        # column (the camera sits beside the gripper, across its closing axis).
        ahead = sim.state().tool_pos + [0.0, 0.0, -0.05]
        u, v, w = projections['wrist'][0] @ np.append(ahead, 1.0)
        assert w > 0 and abs(u / w - 32) < 8 and 0 <= v / w < 64, (u / w, v / w)
        image = sim.render()['wrist']
        assert image.shape == (64, 64, 3) and image.std() > 20
        assert (image[:, :12].max(axis=2) < 40).mean() > 0.2, 'a dark finger in the left columns'
    finally:
        sim.close()
