"""policy_node over real rclpy, in process: /diagnostics like the safety controller's, and its rviz markers
(the envelope, the tool path of each proposal) against a FakeArm playing cameras and /joint_states."""

import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from ros_helpers.fake_arm import FakeArm

from gato_ros.core.robots import Kinematics, load_profile
from gato_ros.ros import markers
from gato_ros.ros.nodes.policy_node import LATCHED_QOS, PolicyNode, PolicyNodeStatus

CAMERAS = {'front_left': '/camera/front_left/image_raw', 'front_right': '/camera/front_right/image_raw'}


def spin(executor, condition, timeout):
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
    assert condition(), f'not within {timeout} s'


def test_policy_node_reports_on_diagnostics(ros):
    context, executor = ros
    node = PolicyNode(context=context, parameter_overrides=[Parameter('allow_random_weights', value=True),
                                                            Parameter('diagnostics_rate', value=10.0)])
    client = rclpy.create_node('diagnostics_listener', context=context)
    arrays = []
    client.create_subscription(DiagnosticArray, '/diagnostics', arrays.append, 10)
    executor.add_node(node)
    executor.add_node(client)
    try:
        spin(executor, lambda: arrays, 20)
        (status,) = arrays[-1].status
        values = {kv.key: kv.value for kv in status.values}
        assert status.name == 'gato_ros: /gato/policy_node' and status.hardware_id == 'ur5e'
        assert status.level == bytes([PolicyNodeStatus.WAITING_FOR_INPUT.level]) == b'\x01'  # WARN
        assert status.message.startswith('WAITING_FOR_INPUT: ')
        assert values['status'] == 'WAITING_FOR_INPUT' and values['weights'] == 'RANDOM (tiny)'
        assert (values['robot'], values['device'], values['rate_hz'], values['deadline_ms']) == \
            ('ur5e', 'cpu', '10', '80')
    finally:
        executor.remove_node(client)
        executor.remove_node(node)
        client.destroy_node()
        node.destroy_node()


def test_diagnostic_levels():
    assert {s.name: s.level for s in PolicyNodeStatus} == {
        'OK': 0, 'WAITING_FOR_INPUT': 1, 'STALE_INPUT': 1, 'DEADLINE_MISSED': 1, 'INVALID_INPUT': 2, 'POLICY_ERROR': 2}


def test_envelope_markers_draw_the_profiles_box_and_table():
    profile = load_profile('sawyer')
    assert markers.base_frame(profile.urdf_path) == 'base'
    assert markers.base_frame(load_profile('ur5e').urdf_path) == 'base_link'
    box, table = markers.envelope(profile, 'base').markers
    ends = np.array([[p.x, p.y, p.z] for p in box.points]).reshape(12, 2, 3)
    lo, hi = profile.workspace_min, profile.workspace_max
    assert np.all(np.isclose(ends, lo) | np.isclose(ends, hi))            # every end is a corner
    lengths = np.sort(np.abs(ends[:, 1] - ends[:, 0]), axis=1)[:, ::-1]   # one axis-aligned edge each
    assert np.allclose(lengths[:, 1:], 0) and sorted(lengths[:, 0]) == pytest.approx(sorted(np.repeat(hi - lo, 4)))
    assert table.pose.position.z + table.scale.z / 2 == pytest.approx(profile.table_height)
    assert table.scale.x > hi[0] - lo[0] and table.scale.y > hi[1] - lo[1]
    assert {box.header.frame_id, table.header.frame_id} == {'base'}


def test_tool_path_marker_follows_each_proposal(ros, tmp_path):
    context, executor = ros
    arm = FakeArm('ur5e', CAMERAS)
    node = PolicyNode(context=context, parameter_overrides=[
        Parameter('allow_random_weights', value=True), Parameter('rate', value=2.0), Parameter('deadline', value=0.5),
        Parameter('horizon', value=1.0), Parameter('camera_topics', value=list(CAMERAS.values()))])
    client = rclpy.create_node('marker_listener', context=context)
    got = {'proposal': [], 'path': [], 'envelope': []}
    client.create_subscription(JointTrajectory, '/gato/policy_node/proposal', got['proposal'].append, 10)
    client.create_subscription(Marker, '/gato/policy_node/tool_path', got['path'].append, 10)
    executor.add_node(node)
    executor.add_node(client)
    try:
        # A late subscriber still gets the envelope: it is latched.
        spin(executor, lambda: any(p.points for p in got['proposal']) and
             any(m.action == Marker.ADD for m in got['path']), 60)
        client.create_subscription(MarkerArray, '/gato/policy_node/envelope', got['envelope'].append, LATCHED_QOS)
        spin(executor, lambda: got['envelope'], 5)
        assert [m.ns for m in got['envelope'][-1].markers] == ['workspace', 'table']
        proposal = next(p for p in got['proposal'] if p.points)
        path = next(m for m in got['path'] if m.action == Marker.ADD)
        assert (path.type, path.header.frame_id) == (Marker.LINE_STRIP, 'base_link')
        kinematics = Kinematics(node.profile)
        expected = [kinematics.tool_position(point.positions) for point in proposal.points]
        np.testing.assert_allclose([[p.x, p.y, p.z] for p in path.points], expected, atol=1e-9)
        arm.camera_on = False  # stale input: the policy holds and the path is deleted
        spin(executor, lambda: got['path'][-1].action == Marker.DELETE, 5)
        assert got['path'][-1].action == Marker.DELETE and not got['proposal'][-1].points
    finally:
        executor.remove_node(client)
        executor.remove_node(node)
        client.destroy_node()
        node.destroy_node()
        arm.close()
