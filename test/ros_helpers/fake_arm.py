"""FakeArm: plays a robot for nodes running in other processes, over real rclpy + Fast DDS.

It publishes camera frames and /joint_states that follow the arm commands (a perfect position/velocity
controller, like ros2_control's mock hardware) and records everything the nodes publish. Its own context and
executor spin in a background thread; tests flip its switches (camera_on, encoding, malformed, drop_joint).
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from gato_ros.core.robots import load_profile
from gato_ros.core.robots.profile import COMMAND_INTERFACES
from ros_helpers.spinner import BackgroundSpinner

CHANNELS = {'rgb8': 3, 'bgr8': 3, 'mono8': 1, 'rgba8': 4, 'bgra8': 4}
RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)


class FakeArm:
    def __init__(self, robot: str, camera_topics: dict[str, str],
                 camera_rate: float = 30.0, joint_rate: float = 100.0, width: int = 80, height: int = 64):
        self.profile = load_profile(robot)
        self.q = self.profile.ready.copy()
        self.qd = np.zeros_like(self.q)
        self.width, self.height = width, height
        # Switches the tests flip.
        self.camera_on = True
        self.encoding = 'rgb8'
        self.malformed = False
        self.drop_joint: str | None = None
        # Records: (monotonic receive time, payload).
        self.commands: dict[str, list[tuple[float, np.ndarray, np.ndarray]]] = {  # t, positions, velocities
            interface: [] for interface in COMMAND_INTERFACES}
        self.grippers: list[tuple[float, float]] = []
        self.status: dict[str, list[tuple[float, str]]] = {'policy': [], 'safety': []}
        self.latencies: list[float] = []
        self.diagnostics: list[tuple[float, DiagnosticArray]] = []

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        node = self.node = rclpy.create_node('fake_arm', context=self.context)
        self._cameras = {}
        for name, topic in camera_topics.items():
            compressed = topic.endswith('/compressed')
            self._cameras[name] = (compressed, node.create_publisher(CompressedImage if compressed else Image,
                                                                     topic, 5))
        self._joint_pub = node.create_publisher(JointState, '/joint_states', 10)
        self.speed_scaling_pub = node.create_publisher(Float64, '/speed_scaling_state_broadcaster/speed_scaling', 1)
        for interface in COMMAND_INTERFACES:   # each controller's topic for this robot (UR: scaled JTC)
            msg_type = JointTrajectory if interface == 'joint_trajectory' else Float64MultiArray
            node.create_subscription(msg_type, self.profile.command_topic_for(interface), self._on_command(interface),
                                     RELIABLE)
        node.create_subscription(Float64MultiArray, self.profile.gripper_topic,
                                 lambda m: self.grippers.append((time.monotonic(), m.data[0])), RELIABLE)
        for key, topic in (('policy', '/gato/policy_node/status'), ('safety', '/gato/safety_controller_node/status')):
            node.create_subscription(String, topic, self._recorder(self.status[key]), RELIABLE)
        node.create_subscription(Float64, '/gato/policy_node/latency', lambda m: self.latencies.append(m.data), 100)
        node.create_subscription(DiagnosticArray, '/diagnostics',
                                 lambda m: self.diagnostics.append((time.monotonic(), m)), 100)
        node.create_timer(1.0 / camera_rate, self._publish_cameras)
        node.create_timer(1.0 / joint_rate, self._publish_joint_state)
        self._spinner = BackgroundSpinner(self.context, [node])

    @staticmethod
    def _recorder(records):
        return lambda msg: records.append((time.monotonic(), msg.data))

    # -- the arm -------------------------------------------------------------------------------------------------

    def _on_command(self, interface: str):
        records = self.commands[interface]

        def follow(msg):
            now = time.monotonic()
            if interface == 'joint_trajectory':
                positions, velocities = np.array(msg.points[0].positions), np.array(msg.points[0].velocities)
            elif interface == 'forward_position':
                positions = np.array(msg.data)
                dt = now - records[-1][0] if records else 0.0
                velocities = (positions - self.q) / dt if dt > 0.0 else np.zeros_like(positions)
            else:
                velocities = np.array(msg.data)
                dt = now - records[-1][0] if records else 0.0
                positions = self.q + velocities * min(dt, 0.02)
            self.q, self.qd = positions, velocities
            records.append((now, positions, velocities))
        return follow

    def _publish_joint_state(self):
        names = list(self.profile.joint_names) + list(self.profile.gripper_joint_names)
        position = list(self.q) + [0.04] * len(self.profile.gripper_joint_names)
        velocity = list(self.qd) + [0.0] * len(self.profile.gripper_joint_names)
        if self.drop_joint is not None:
            i = names.index(self.drop_joint)
            del names[i], position[i], velocity[i]
        msg = JointState(name=names, position=position, velocity=velocity)
        msg.header.stamp = self.node.get_clock().now().to_msg()
        self._joint_pub.publish(msg)

    def _publish_cameras(self):
        if not self.camera_on:
            return
        stamp = self.node.get_clock().now().to_msg()
        shade = int(time.monotonic() * 50) % 255
        rgb = np.full((self.height, self.width, 3), (shade, 100, 255 - shade), dtype=np.uint8)
        for compressed, pub in self._cameras.values():
            msg = self._compressed(rgb) if compressed else self._image(rgb)
            msg.header.stamp = stamp
            pub.publish(msg)

    def _image(self, rgb: np.ndarray) -> Image:
        """An Image in the current encoding, each row padded by 4 bytes (`step` > width * channels)."""
        conversions = {'rgb8': None, 'bgr8': cv2.COLOR_RGB2BGR, 'mono8': cv2.COLOR_RGB2GRAY,
                       'rgba8': cv2.COLOR_RGB2RGBA, 'bgra8': cv2.COLOR_RGB2BGRA}
        code = conversions[self.encoding]
        pixels = rgb if code is None else cv2.cvtColor(rgb, code)
        rows = pixels.reshape(self.height, -1)
        padded = np.zeros((self.height, rows.shape[1] + 4), dtype=np.uint8)
        padded[:, :rows.shape[1]] = rows
        step = padded.shape[1] - (8 if self.malformed else 0)  # malformed: step too small for the width
        return Image(height=self.height, width=self.width, encoding=self.encoding, step=step,
                     data=padded.tobytes())

    @staticmethod
    def _compressed(rgb: np.ndarray) -> CompressedImage:
        ok, data = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        assert ok
        return CompressedImage(format='jpeg', data=data.tobytes())

    # -- test helpers --------------------------------------------------------------------------------------------

    def call(self, srv_type, name: str, request, timeout: float = 10.0):
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout), f'service {name} not available'
            future = client.call_async(request)
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.01)
            assert future.done(), f'service {name} did not answer within {timeout} s'
            return future.result()
        finally:
            self.node.destroy_client(client)

    def commands_since(self, interface: str, t: float):
        return [c for c in list(self.commands[interface]) if c[0] >= t]

    def statuses_since(self, key: str, t: float) -> list[str]:
        return [text for stamp, text in list(self.status[key]) if stamp >= t]

    def close(self):
        self._spinner.stop()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def wait_for(predicate, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
