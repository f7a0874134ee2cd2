"""Real ROS 2: two processes exchange sensor_msgs/JointState over Fast DDS with the venv's rclpy."""

import subprocess
import sys
import textwrap
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import JointState

TALKER = textwrap.dedent('''
    import sys, time, rclpy
    from sensor_msgs.msg import JointState
    rclpy.init()
    node = rclpy.create_node('smoke_talker')
    pub = node.create_publisher(JointState, 'smoke_joint_states', 10)
    deadline = time.monotonic() + float(sys.argv[1])
    i = 0
    while time.monotonic() < deadline:
        msg = JointState(name=['shoulder_pan_joint', 'elbow_joint'], position=[0.1 * i, -0.5])
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        i += 1
        time.sleep(0.02)
    rclpy.shutdown()
''')


def test_joint_state_crosses_processes():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('smoke_listener', context=context)
    received = []
    node.create_subscription(JointState, 'smoke_joint_states', received.append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    talker = subprocess.Popen([sys.executable, '-c', TALKER, '20'])
    try:
        deadline = time.monotonic() + 20
        while len(received) < 5 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
    finally:
        talker.terminate()
        talker.wait(timeout=10)
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert len(received) >= 5, f'only {len(received)} JointState messages arrived over DDS'
    msg = received[-1]
    assert list(msg.name) == ['shoulder_pan_joint', 'elbow_joint']
    assert msg.position[1] == -0.5
    assert msg.position[0] > 0.0  # a later message than the first one: the stream is live
