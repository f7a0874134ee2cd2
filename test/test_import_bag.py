"""gato-ros import-bag on a bag the test records itself: real rclpy publishers (a robot's /joint_states with its
joints in another order and one more, a bgr8 Image camera, a PNG CompressedImage camera, the action topic), a
raw rclpy subscriber writing the bag through rosbags (ros_helpers.BagRecorder), then the command turns it into an
episode; bad bags get one clear line and exit status 2."""

import json
import shutil

import cv2
import numpy as np
import pytest
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray

from gato_ros.cli import main as cli
from gato_ros.core.data import load_episodes, read_info
from gato_ros.core.robots import load_profile
from ros_helpers.bag_recorder import BagRecorder
from ros_helpers.spinner import BackgroundSpinner

STEPS = 6
LEFT, RIGHT = '/camera/front_left/image_raw', '/wrist/image_raw/compressed'
TOPICS = {'/joint_states': JointState, LEFT: Image, RIGHT: CompressedImage, '/gato/action': Float64MultiArray}
BGR, RGB_RIGHT = (200, 10, 50), (5, 120, 240)


def _joint_positions(profile, k: int) -> np.ndarray:
    return np.r_[profile.ready + 0.01 * k, 0.01, 0.01]


@pytest.fixture(scope='module')
def bag(tmp_path_factory):
    """A bag recorded through real topics: STEPS control steps of the UR5e's inputs, then its action."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    profile = load_profile('ur5e')
    path = tmp_path_factory.mktemp('robot') / 'rosbag2_2026_12_02-01_00_00'
    robot = rclpy.create_node('robot', context=context)
    pubs = {'/joint_states': robot.create_publisher(JointState, '/joint_states', QoSProfile(
                depth=10, reliability=ReliabilityPolicy.RELIABLE)),
            LEFT: robot.create_publisher(Image, LEFT, qos_profile_sensor_data),          # best effort, a driver's
            RIGHT: robot.create_publisher(CompressedImage, RIGHT, qos_profile_sensor_data),
            '/gato/action': robot.create_publisher(Float64MultiArray, '/gato/action', 10)}
    recorder = BagRecorder(context, path, TOPICS)
    spinner = BackgroundSpinner(context, [recorder])
    try:
        for pub in pubs.values():
            while pub.get_subscription_count() < 1:
                rclpy.spin_once(robot, timeout_sec=0.05)
        names = [*profile.joint_names, *profile.gripper_joint_names]
        order = [*reversed(range(len(names)))]
        png = cv2.imencode('.png', np.full((24, 24, 3), RGB_RIGHT[::-1], np.uint8))[1].tobytes()
        for k in range(STEPS):
            q = _joint_positions(profile, k)
            pubs['/joint_states'].publish(JointState(name=['conveyor_joint', *(names[i] for i in order)],
                                                     position=[9.0, *q[order]]))
            pubs[LEFT].publish(Image(height=32, width=48, encoding='bgr8', step=48 * 3,
                                     data=np.full((32, 48, 3), BGR, np.uint8).tobytes()))
            pubs[RIGHT].publish(CompressedImage(format='png', data=png))
            for topic in ('/joint_states', LEFT, RIGHT):
                recorder.wait_for(topic, k + 1)
            pubs['/gato/action'].publish(Float64MultiArray(data=[0.1 * k, -0.2, 0.3, 0.0, 1.0 - 2 * (k % 2)]))
            recorder.wait_for('/gato/action', k + 1)
    finally:
        spinner.stop()
        recorder.close()
        robot.destroy_node()
        rclpy.shutdown(context=context)
    return path, recorder.type_hashes


def test_the_recorded_bag_carries_the_publishers_type_hashes(bag):
    path, hashes = bag
    typestore = get_typestore(Stores.ROS2_JAZZY)
    for topic, msg_class in TOPICS.items():       # rosbags' Jazzy typestore hashes types as the ROS 2 graph does
        assert hashes[topic] == typestore.hash_rihs01(msg_class.__module__.split('.')[0] + '/msg/'
                                                      + msg_class.__name__), topic
    assert (path / 'metadata.yaml').is_file()


def test_import_bag_turns_a_robot_bag_into_an_episode(bag, tmp_path, capsys):
    path, _ = bag
    out = tmp_path / 'episodes'
    args = ['import-bag', str(path), '--out', str(out), '--image-size', '16', '--camera', f'front_left={LEFT}',
            '--camera', f'front_right={RIGHT}', '--task', 'green,red', '--json']
    assert cli(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['imported'] == 1 and summary['steps'] == STEPS
    (episode,) = load_episodes(out, only_successful=True)
    profile = load_profile('ur5e')
    assert episode.info == read_info(out / path.name)
    assert (episode.info.robot, episode.info.task, episode.info.driver) == ('ur5e', ('green', 'red'), 'imported')
    assert len(episode) == STEPS and episode.info.cameras == ('front_left', 'front_right')
    for k in range(STEPS):       # joints by name, in the profile's order; the extra joint is left out
        q = _joint_positions(profile, k)
        np.testing.assert_allclose(episode.q[k], q[:6])
        np.testing.assert_allclose(episode.finger_q[k], q[6:])
    np.testing.assert_allclose(episode.actions[:, 0], 0.1 * np.arange(STEPS), atol=1e-6)
    np.testing.assert_allclose(episode.actions[:, 4], [1, -1] * (STEPS // 2))
    assert episode.images['front_left'].shape == (STEPS, 16, 16, 3)
    assert (episode.images['front_left'] == BGR[::-1]).all()          # bgr8 -> RGB, 48x32 -> 16x16
    assert (episode.images['front_right'] == RGB_RIGHT).all()         # PNG decoded
    assert episode.time[0] == 0.0 and (np.diff(episode.time) > 0).all()
    assert episode.info.control_hz > 0
    assert cli(args) == 0                                             # imported already: skipped
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])['skipped'] == 1


def _truncated(path, tmp_path):
    copy = tmp_path / 'truncated'
    shutil.copytree(path, copy)
    mcap = next(copy.glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[:2000])
    return copy


@pytest.mark.parametrize('case, expected', [
    ('missing topic', "no action topic '/arm/action'; the bag has /camera/front_left/image_raw, "),
    ('unknown joints', "robot 'sawyer': JointState is missing joint(s) ['right_j0',"),
    ('wrong type', "camera topic '/joint_states' is sensor_msgs/msg/JointState, expected sensor_msgs/msg/Image or "),
    ('corrupt bag', 'truncated: not a readable rosbag2 bag (ReaderError: File end magic is invalid.)'),
    ('not a bag', 'nothing: not a readable rosbag2 bag ('),
])
def test_bad_bags_are_one_clear_line(bag, tmp_path, capsys, case, expected):
    path, _ = bag
    cameras = ['--camera', f'front_left={LEFT}', '--camera', f'front_right={RIGHT}']
    args = {'missing topic': [str(path), *cameras, '--action-topic', '/arm/action'],
            'unknown joints': [str(path), *cameras, '--robot', 'sawyer'],
            'wrong type': [str(path), '--camera', 'front_left=/joint_states'],
            'corrupt bag': [str(_truncated(path, tmp_path)), *cameras],
            'not a bag': [str(tmp_path / 'nothing'), *cameras]}[case]
    assert cli(['import-bag', *args, '--out', str(tmp_path / 'out')]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('gato-ros import-bag: ') and expected in lines[0], lines
