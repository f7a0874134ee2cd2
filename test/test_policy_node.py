"""policy_node over real rclpy, in process: /diagnostics like the safety controller's."""

import time

import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter

from gato_ros.ros.nodes.policy_node import PolicyNode, PolicyNodeStatus


@pytest.fixture
def ros():
    context = rclpy.Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    yield context, executor
    executor.shutdown()
    rclpy.shutdown(context=context)


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
        deadline = time.monotonic() + 20
        while not arrays and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert arrays, 'nothing on /diagnostics'
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
