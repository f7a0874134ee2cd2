"""SafetyRig: plays the driver, the policy and the attackers around a safety_controller_node running in another
process, over real rclpy + Fast DDS (no cameras, no policy model: the proposals come from here).

* driver: /joint_states at 200 Hz from an ideal arm. forward_position: the arm is where it was last commanded;
  forward_velocity: the arm integrates the last velocity command over real time, like a velocity controller that
  repeats it (it keeps moving while the safety node is silent).
* /clock (optional): sim time advancing with the wall clock; `clock_stalled` freezes it, `jump_clock(-1.0)` steps it.
* policy: `goal` -> a hold proposal toward it at 20 Hz on /gato/policy_node/proposal, from node /gato/policy_node.
* faults: `joint_state_fault` rewrites the next /joint_states (names, positions, velocities) before publishing.
* attackers: `spoof(goal, lead)` starts a second ~/proposal publisher stamped `lead` s ahead; `spoof_commands()`
  a second publisher on the command topic.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from gato_ros.core.robots import load_profile
from ros_helpers.spinner import BackgroundSpinner
from gato_ros.ros import conversions

RELIABLE = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE)
STATUS = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
TOPICS = {'forward_position': '/forward_position_controller/commands',
          'forward_velocity': '/forward_velocity_controller/commands'}
PROPOSAL = '/gato/policy_node/proposal'


class SafetyRig:
    def __init__(self, robot: str, interface: str = 'forward_position', sim_time: bool = False,
                 joint_rate: float = 200.0):
        self.profile = load_profile(robot)
        self.interface = interface
        self.q = self.profile.ready.copy()
        self.v = np.zeros_like(self.q)
        self.goal: np.ndarray | None = None
        self.joint_state_fault = None  # callable(names, positions, velocities) -> same, or None
        self.sim_time = sim_time
        self.clock_stalled = False
        self.velocity_gain = 1.0  # forward_velocity: the arm moves at gain x the command (a miscalibrated controller)
        self._sim = 1000.0
        self._wall = time.monotonic()
        self._integrated = time.monotonic()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.statuses: list[tuple[float, str]] = []
        self.diagnostics: list[tuple[float, DiagnosticArray]] = []
        self.trace: list[tuple[float, np.ndarray]] = []  # (wall, measured q) as published
        self._lock = threading.Lock()

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.driver = rclpy.create_node('fake_driver', context=self.context)
        self.policy = rclpy.create_node('policy_node', namespace='/gato', context=self.context)
        self.nodes = [self.driver, self.policy]
        self._joint_pub = self.driver.create_publisher(JointState, '/joint_states', 10)
        self._clock_pub = self.driver.create_publisher(Clock, '/clock', 10)
        self.driver.create_subscription(Float64MultiArray, TOPICS[interface], self._on_command, RELIABLE)
        self.driver.create_subscription(String, '/gato/safety_controller_node/status', self._on_status, STATUS)
        self.driver.create_subscription(DiagnosticArray, '/diagnostics',
                                        lambda m: self.diagnostics.append((time.monotonic(), m)), 100)
        self._proposal_pub = self.policy.create_publisher(JointTrajectory, PROPOSAL, 1)
        self.driver.create_timer(1.0 / joint_rate, self._publish_joint_state)
        if sim_time:
            self.driver.create_timer(0.004, self._publish_clock)
        self.policy.create_timer(0.05, self._publish_proposal)
        self._spinner = BackgroundSpinner(self.context, self.nodes)

    # -- time ----------------------------------------------------------------------------------------------------

    def now(self) -> float:
        """The time the stamps use: sim time (advancing with the wall clock unless stalled), or the wall clock."""
        if not self.sim_time:
            return time.time()
        with self._lock:
            wall = time.monotonic()
            if not self.clock_stalled:
                self._sim += wall - self._wall
            self._wall = wall
            return self._sim

    def jump_clock(self, seconds: float):
        with self._lock:
            self._sim += seconds

    def _publish_clock(self):
        if self.sim_time:
            self._clock_pub.publish(Clock(clock=conversions.to_time_msg(self.now())))

    # -- the arm -------------------------------------------------------------------------------------------------

    def _on_command(self, msg):
        t = time.monotonic()
        data = np.array(msg.data)
        with self._lock:
            self._advance(t)
            if self.interface == 'forward_position':
                self.q = data
            else:
                self.v = data
        self.commands.append((t, data))

    def _advance(self, t):
        if self.interface == 'forward_velocity':
            self.q = self.q + self.velocity_gain * self.v * (t - self._integrated)
        self._integrated = t

    def _publish_joint_state(self):
        with self._lock:
            self._advance(time.monotonic())
            q, v = self.q.copy(), self.v.copy()
        names = list(self.profile.joint_names)
        positions, velocities = list(q), list(v)
        if self.joint_state_fault is not None:
            names, positions, velocities = self.joint_state_fault(names, positions, velocities)
        self.trace.append((time.monotonic(), q))
        msg = JointState(name=names, position=[float(x) for x in positions], velocity=[float(x) for x in velocities])
        msg.header.stamp = conversions.to_time_msg(self.now())
        self._joint_pub.publish(msg)

    # -- proposals -----------------------------------------------------------------------------------------------

    def _proposal(self, goal, lead: float = 0.0) -> JointTrajectory:
        stamp = self.now() + lead
        msg = JointTrajectory(joint_names=list(self.profile.joint_names))
        msg.header.stamp = conversions.to_time_msg(stamp)
        msg.points = [JointTrajectoryPoint(positions=[float(x) for x in goal],
                                           time_from_start=conversions.to_duration_msg(t)) for t in (0.0, 0.5)]
        return msg

    def _publish_proposal(self):
        if self.goal is not None:
            self._proposal_pub.publish(self._proposal(self.goal))

    def spoof(self, goal, lead: float = 0.2, rate: float = 50.0):
        """A second publisher on ~/proposal (another node), stamped `lead` s ahead. Returns its sent count."""
        node = rclpy.create_node('spoofer', context=self.context)
        pub = node.create_publisher(JointTrajectory, PROPOSAL, 1)
        sent = [0]

        def send():
            pub.publish(self._proposal(goal, lead))
            sent[0] += 1
        node.create_timer(1.0 / rate, send)
        self.nodes.append(node)
        self._spinner.add_node(node)
        return sent

    def spoof_commands(self):
        node = rclpy.create_node('command_spoofer', context=self.context)
        pub = node.create_publisher(Float64MultiArray, TOPICS[self.interface], 1)
        node.create_timer(0.1, lambda: None)
        self.nodes.append(node)
        self._spinner.add_node(node)
        return pub

    # -- records -------------------------------------------------------------------------------------------------

    def _on_status(self, msg):
        self.statuses.append((time.monotonic(), msg.data))

    def commands_since(self, t: float):
        return [c for c in list(self.commands) if c[0] >= t]

    def statuses_since(self, t: float) -> list[str]:
        return [text for stamp, text in list(self.statuses) if stamp >= t]

    def status(self) -> str:
        return self.statuses[-1][1] if self.statuses else ''

    def close(self):
        self._spinner.stop()
        for node in self.nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)
