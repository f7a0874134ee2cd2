"""sim_node over real rclpy: joint states, camera images, clock and task status out; commands in; bad input out."""

import json
import time

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from builtin_interfaces.msg import Duration
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from gato_ros.core.sim import SimConfig, StackingSim
from gato_ros.ros.params import ParamError


def make_node(context, **overrides):
    from gato_ros.ros.nodes.sim_node import SimNode
    return SimNode(context=context, parameter_overrides=[Parameter(k, value=v) for k, v in overrides.items()])


def spin_until(executor, condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.01)
    return condition()


def test_bad_parameter_fails_at_start_naming_it(ros):
    context, _ = ros
    with pytest.raises(ParamError, match='rate'):
        make_node(context, rate=5.0)
    with pytest.raises(ParamError, match='task'):
        make_node(context, task=['red', 'pink'])


def test_sensor_topics_have_the_drivers_qos_and_camera_info_projects_like_the_render(ros):
    context, executor = ros
    sim = make_node(context, image_size=128, camera_rate=30.0)
    client = rclpy.create_node('sim_qos_test', context=context)
    executor.add_node(sim)
    executor.add_node(client)
    got = {'joints': [], 'image': [], 'info': []}
    # A reliable subscriber (rviz, ros2 bag) hears /joint_states; best-effort SensorDataQoS ones hear the cameras.
    client.create_subscription(JointState, '/joint_states', got['joints'].append,
                               QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
    client.create_subscription(Image, '/camera/front_left/image_raw', got['image'].append, qos_profile_sensor_data)
    client.create_subscription(CameraInfo, '/camera/front_left/camera_info', got['info'].append,
                               qos_profile_sensor_data)
    try:
        assert spin_until(executor, lambda: got['joints'] and got['image'] and got['info'], 20)
        for topic in ('/joint_states', '/camera/front_left/image_raw', '/camera/front_left/camera_info'):
            (publisher,) = client.get_publishers_info_by_topic(topic)
            assert publisher.qos_profile.reliability == ReliabilityPolicy.RELIABLE, topic
        # discovery does not carry the history depth: read it off the publishers
        assert sim.joint_pub.qos_profile.depth == sim.image_pubs['front_left'].qos_profile.depth == 10
        image, info = got['image'][-1], got['info'][-1]
        assert (info.width, info.height, info.header.frame_id) == (128, 128, 'front_left') == \
            (image.width, image.height, image.header.frame_id)
        fovy = sim.sim.model.cam_fovy[sim.sim.model.camera('front_left').id]
        k = np.array(info.k).reshape(3, 3)
        assert k[0, 0] == k[1, 1] == pytest.approx(64.0 / np.tan(np.radians(fovy) / 2))
        # The blocks' centres, projected through K from the camera's pose, land on their pixels in the image.
        rgb = np.frombuffer(bytes(image.data), dtype=np.uint8).reshape(128, 128, 3).astype(int)
        data, camera = sim.sim.data, sim.sim.model.camera('front_left').id
        for color, channel in (('red', 0), ('green', 1)):
            centre = sim.privileged_state().blocks[color].position
            x, y, z = data.cam_xmat[camera].reshape(3, 3).T @ (centre - data.cam_xpos[camera])  # looks along -z
            u, v = k[0, 2] + k[0, 0] * x / -z, k[1, 2] - k[1, 1] * y / -z
            rows, cols = np.nonzero(rgb[..., channel] - np.delete(rgb, channel, axis=2).max(axis=2) > 60)
            assert rows.size > 20, color
            assert abs(cols.mean() - u) < 1.5 and abs(rows.mean() - v) < 1.5, (color, u, v, cols.mean(), rows.mean())
    finally:
        executor.remove_node(client)
        executor.remove_node(sim)
        client.destroy_node()
        sim.destroy_node()


@pytest.mark.slow
def test_sim_node_publishes_and_obeys_commands(ros):
    context, executor = ros
    sim = make_node(context, rate_factor=2.0)
    client = rclpy.create_node('sim_node_test', context=context)
    executor.add_node(sim)
    executor.add_node(client)
    got = {'joints': [], 'images': {}, 'clock': [], 'status': []}
    client.create_subscription(JointState, '/joint_states', got['joints'].append, qos_profile_sensor_data)
    for name in ('front_left', 'wrist'):
        client.create_subscription(Image, f'/camera/{name}/image_raw',
                                   lambda msg, name=name: got['images'].setdefault(name, []).append(msg),
                                   qos_profile_sensor_data)
    client.create_subscription(Clock, '/clock', got['clock'].append, 10)
    client.create_subscription(String, '/gato/sim/task_status', got['status'].append, 10)
    position_pub = client.create_publisher(Float64MultiArray, '/forward_position_controller/commands', 1)
    gripper_pub = client.create_publisher(Float64MultiArray, '/gripper_controller/commands', 1)
    trajectory_pub = client.create_publisher(JointTrajectory, '/scaled_joint_trajectory_controller/joint_trajectory',
                                             1)   # the UR driver's controller
    try:
        assert spin_until(executor, lambda: len(got['joints']) > 50 and len(got['images']) == 2
                          and got['status'], 20)
        start = time.monotonic()
        count = len(got['joints'])
        spin_until(executor, lambda: False, 0.5)
        assert (len(got['joints']) - count) / (time.monotonic() - start) >= 100  # Hz
        joints = got['joints'][-1]
        assert list(joints.name) == list(sim.sim.joint_names)
        ready = np.array(sim.profile.ready)
        start = StackingSim(SimConfig()).state().q   # seed 0's start pose
        np.testing.assert_allclose(got['joints'][0].position[:6], start, atol=1e-3)
        np.testing.assert_allclose(joints.position[:6], start, atol=1e-3)  # held without commands
        image = got['images']['front_left'][-1]
        assert (image.encoding, image.height, image.width) == ('rgb8', 64, 64) and len(image.data) == 64 * 64 * 3
        assert bytes(image.data) != bytes(got['images']['wrist'][-1].data)
        stamps = [c.clock.sec + c.clock.nanosec * 1e-9 for c in got['clock']]
        assert stamps[-1] > stamps[0] and np.all(np.diff(stamps) >= 0)
        assert json.loads(got['status'][-1].data)['task'] == ['red', 'blue']

        target = ready + 0.1
        position_pub.publish(Float64MultiArray(data=target.tolist()))
        gripper_pub.publish(Float64MultiArray(data=[1.0]))
        assert spin_until(executor, lambda: np.abs(np.array(got['joints'][-1].position[:6]) - target).max() < 0.005
                          and got['joints'][-1].position[6] < 0.005, 10), 'position and gripper commands obeyed'

        bad = []
        sim.get_logger().error = bad.append  # the node logs and keeps running
        position_pub.publish(Float64MultiArray(data=[0.0, 1.0]))
        trajectory_pub.publish(JointTrajectory(joint_names=['elbow_joint']))
        assert spin_until(executor, lambda: len(bad) == 2, 5)
        assert any('/forward_position_controller/commands' in m and 'expected 6 values' in m for m in bad)
        assert any('/scaled_joint_trajectory_controller/joint_trajectory' in m for m in bad)
        count = len(got['joints'])
        assert spin_until(executor, lambda: len(got['joints']) > count + 10, 5)
        np.testing.assert_allclose(got['joints'][-1].position[:6], target, atol=0.005)  # still holding

        velocity_pub = client.create_publisher(Float64MultiArray, '/forward_velocity_controller/commands', 1)
        velocity_pub.publish(Float64MultiArray(data=[0.3, 0, 0, 0, 0, 0]))  # keeps moving, like the real one
        assert spin_until(executor, lambda: got['joints'][-1].position[0] > target[0] + 0.1, 10)
        point = JointTrajectoryPoint(positions=ready.tolist(), time_from_start=Duration(sec=1))
        trajectory_pub.publish(JointTrajectory(joint_names=list(sim.profile.joint_names), points=[point]))
        assert spin_until(executor, lambda: np.abs(np.array(got['joints'][-1].position[:6]) - ready).max() < 0.005,
                          10), 'joint trajectory followed back to ready'

        position_pub.publish(Float64MultiArray(data=target.tolist()))
        assert spin_until(executor, lambda: np.abs(np.array(got['joints'][-1].position[:6]) - target).max() < 0.005,
                          10)
        reset = client.create_client(Trigger, '/sim_node/reset')
        assert reset.wait_for_service(timeout_sec=5)
        future = reset.call_async(Trigger.Request())
        assert spin_until(executor, future.done, 5) and future.result().success
        assert spin_until(executor, lambda: json.loads(got['status'][-1].data)['seed'] == 1, 5)
        seed_1 = StackingSim(SimConfig())
        seed_1.reset(1)
        assert spin_until(executor, lambda: np.abs(np.array(got['joints'][-1].position[:6]) - seed_1.state().q).max()
                          < 1e-3, 5), 'the next seed starts at its own start pose, held'
    finally:
        executor.remove_node(client)
        executor.remove_node(sim)
        client.destroy_node()
        sim.destroy_node()


def test_frames_come_every_camera_period_of_sim_time_even_when_rendering_is_slow(ros):
    """512 px frames at 30 Hz with the sim at 3x real time: the renderer cannot keep up, so physics waits for it.
    Before, the cameras ran on the wall clock and a policy saw frames several periods old in sim time."""
    from gato_ros.ros.nodes.sim_node import CAMERA_LAG

    context, executor = ros
    sim = make_node(context, image_size=512, camera_rate=30.0, rate_factor=3.0)
    client = rclpy.create_node('sim_frames_test', context=context)
    executor.add_node(sim)
    executor.add_node(client)
    stamps = []
    client.create_subscription(Image, '/camera/front_left/image_raw',
                               lambda msg: stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9),
                               QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))
    try:
        assert spin_until(executor, lambda: len(stamps) > 40, 60)
        gaps = np.diff(stamps)
        assert gaps.min() >= 1 / 30.0 - 1e-6 and gaps.max() <= 1 / 30.0 + CAMERA_LAG + 1e-6, gaps
        assert sim.clock - stamps[-1] <= 1 / 30.0 + CAMERA_LAG + 1e-6
    finally:
        executor.remove_node(client)
        executor.remove_node(sim)
        client.destroy_node()
        sim.destroy_node()
