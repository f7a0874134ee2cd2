"""policy_node: cameras + /joint_states -> Gato step at a fixed rate -> ~/proposal (JointTrajectory), ~/gripper.

Callbacks only store the latest message. A fixed-rate timer wakes the step thread, which builds the observation
from the freshest inputs, runs the policy and publishes the proposal: the step (tens of ms) never holds up the
executor, so inputs keep arriving and the watchdog keeps watching while it runs; a tick that comes while a step is
still running is dropped (no backlog). A step is skipped and reported (~/status + log) when an input is missing,
stale or malformed, or the step misses its deadline; then the node publishes an empty JointTrajectory, which the
safety controller takes as "no valid proposal: brake to a hold". A 50 Hz watchdog does the same as soon as an
input turns stale, so the arm starts braking stale_timeout after the last frame, not up to a period later.

For rviz (rviz/gato_ros.rviz): ~/envelope (latched MarkerArray: the workspace box and the table plane) and
~/tool_path (Marker: the tool path of each proposal, deleted on a hold); /diagnostics as the safety controller.

  policy_node --ros-args -p robot:=ur5e -p checkpoint:=/path/to/checkpoint
"""

from __future__ import annotations

import collections
import enum
import sys
import threading

import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.node import Node
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from std_msgs.msg import Float64, String
from trajectory_msgs.msg import JointTrajectory
from visualization_msgs.msg import Marker, MarkerArray

from gato_ros.core.observation import Observer
from gato_ros.core.robots import CartesianActionSpace, load_profile
from gato_ros.core.stats import LatencySummary
from gato_ros.ros import conversions, markers, params
from gato_ros.ros.params import PolicyNodeConfig

WATCHDOG_PERIOD = 0.02  # s: input-staleness check between steps
COMMAND_QOS = 1         # reliable, depth 1: only the newest proposal matters
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class PolicyNodeStatus(enum.Enum):
    OK = 'the last step published a proposal'
    WAITING_FOR_INPUT = 'an input has not arrived yet'
    STALE_INPUT = 'an input is older than stale_timeout'
    INVALID_INPUT = 'an input could not be converted'
    DEADLINE_MISSED = 'the step took longer than the deadline'
    POLICY_ERROR = 'the policy returned no usable action'

    @property
    def level(self) -> int:
        """diagnostic_msgs/DiagnosticStatus level: 0 OK, 1 WARN (no input yet, stale, late), 2 ERROR (bad input or
        policy output)."""
        if self is PolicyNodeStatus.OK:
            return 0
        return 2 if self in (PolicyNodeStatus.INVALID_INPUT, PolicyNodeStatus.POLICY_ERROR) else 1


class StartupError(RuntimeError):
    """The node cannot start with this configuration; the message says what to change."""


def load_policy(config: PolicyNodeConfig, profile):
    """GatoPolicy from the checkpoint, or random weights only when explicitly allowed."""
    if not config.checkpoint and not config.allow_random_weights:
        raise StartupError("policy_node: no checkpoint (parameter 'checkpoint' is empty). Give a trained "
                           'checkpoint directory, or set allow_random_weights:=true to run RANDOM weights '
                           '(bring-up and tests only: the arm moves meaninglessly)')
    import torch  # only once a policy is really built

    from gato_ros.core.policy import GatoPolicy
    from gato_ros.core.policy_spec import PolicySpecError

    if config.threads:
        torch.set_num_threads(config.threads)
    options = dict(device=config.device, seed=config.seed, deadline_s=config.deadline,
                   grip_hysteresis=config.grip_hysteresis)
    if config.max_context:
        options['max_context'] = config.max_context
    if not config.checkpoint:
        return GatoPolicy.random(config.preset, profile, **options)
    policy = GatoPolicy.from_checkpoint(config.checkpoint, profile, **options)
    source = f'policy_node (checkpoint {config.checkpoint})'
    try:  # the node's parameters must describe what the checkpoint was trained on
        policy.spec.check_setting('cameras', config.cameras, f'{source}, parameter cameras')
        policy.spec.check_setting('image_size', config.image_size, f'{source}, parameter image_size')
        policy.spec.check_setting('control_hz', config.rate, f'{source}, parameter rate')
    except PolicySpecError as exc:
        raise StartupError(str(exc)) from None
    return policy


def _stamp(msg, received: float) -> float:
    """Header stamp (capture time) when the publisher set one, else our receive time."""
    stamp = conversions.to_seconds(msg.header.stamp)
    return stamp if stamp > 0.0 else received


class PolicyNode(Node):
    def __init__(self, policy=None, **node_kwargs):
        super().__init__('policy_node', namespace='/gato', **node_kwargs)
        self.config = params.declare(self, PolicyNodeConfig)
        self.profile = load_profile(self.config.robot)
        self.observer = Observer(self.profile)
        self.kinematics = self.observer.kinematics
        self.action_space = CartesianActionSpace()
        self.policy = policy if policy is not None else load_policy(self.config, self.profile)
        if getattr(self.policy, 'random_weights', False):
            self.get_logger().warning('RANDOM WEIGHTS: the proposals are meaningless (bring-up/tests only)')
            self._weights = f'RANDOM ({self.config.preset})'
        else:  # a checkpoint, or a policy object handed in (the demo's scripted expert)
            self._weights = self.config.checkpoint or type(self.policy).__name__

        self._images: dict[str, tuple[Image | CompressedImage, float]] = {}
        self._joint_state: tuple[JointState, float] | None = None
        self._gripper_command = 0.0
        self._status: tuple[PolicyNodeStatus, str] | None = None
        self._holding = False  # an empty proposal is out and no step has succeeded since
        self.latencies = collections.deque(maxlen=1000)  # step latencies (s), for bringup's report
        # The step holds _step_lock while it computes; every publication holds _publish_lock, so the watchdog
        # can stop the arm while a long step runs, and close() waits for both.
        self._step_lock, self._publish_lock = threading.Lock(), threading.Lock()
        self._closed = False

        inputs = ReentrantCallbackGroup()
        for camera, topic in zip(self.config.cameras, self.config.camera_topics):
            msg_type = CompressedImage if topic.rstrip('/').endswith('/compressed') else Image
            self.create_subscription(msg_type, topic, self._store_image(camera), qos_profile_sensor_data,
                                     callback_group=inputs)
        self.create_subscription(JointState, self.config.joint_states_topic, self._store_joint_state,
                                 qos_profile_sensor_data, callback_group=inputs)
        self.proposal_pub = self.create_publisher(JointTrajectory, '~/proposal', COMMAND_QOS)
        self.gripper_pub = self.create_publisher(Float64, '~/gripper', COMMAND_QOS)
        self.latency_pub = self.create_publisher(Float64, '~/latency', 10)
        self.status_pub = self.create_publisher(String, '~/status', 10)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.frame = markers.base_frame(self.profile.urdf_path)
        self.tool_path_pub = self.create_publisher(Marker, '~/tool_path', COMMAND_QOS)
        self.envelope_pub = self.create_publisher(MarkerArray, '~/envelope', LATCHED_QOS)
        self.envelope_pub.publish(markers.envelope(self.profile, self.frame))
        self._step_wanted = threading.Event()
        self._stepper = threading.Thread(target=self._step_loop, name='policy-step', daemon=True)
        self._stepper.start()
        self._step_failure: BaseException | None = None
        self.create_timer(1.0 / self.config.rate, self._wake_step, MutuallyExclusiveCallbackGroup())
        self.create_timer(WATCHDOG_PERIOD, self._watchdog, MutuallyExclusiveCallbackGroup())
        self.create_timer(1.0 / self.config.diagnostics_rate, self._publish_diagnostics,
                          MutuallyExclusiveCallbackGroup())
        self.get_logger().info(
            f'{self.profile.name}: {self.config.rate:g} Hz, deadline {self.config.deadline * 1e3:.0f} ms, '
            f'cameras {dict(zip(self.config.cameras, self.config.camera_topics))}')

    # -- callbacks: store only -----------------------------------------------------------------------------------

    def _store_image(self, camera: str):
        def store(msg):
            self._images[camera] = (msg, self._now())
        return store

    def _store_joint_state(self, msg: JointState):
        self._joint_state = (msg, self._now())

    # -- the control step ----------------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _input_problem(self, now: float) -> tuple[PolicyNodeStatus, str] | None:
        inputs = {f'camera {c} ({t})': self._images.get(c)
                  for c, t in zip(self.config.cameras, self.config.camera_topics)}
        inputs[f'joint states ({self.config.joint_states_topic})'] = self._joint_state
        for name, entry in inputs.items():
            if entry is None:
                return PolicyNodeStatus.WAITING_FOR_INPUT, f'no message yet from {name}'
            age = now - _stamp(*entry)
            if age > self.config.stale_timeout:
                return PolicyNodeStatus.STALE_INPUT, (f'{name} is {age:.3f} s old > stale_timeout '
                                                      f'{self.config.stale_timeout} s')
        return None

    def _watchdog(self):
        with self._publish_lock:
            problem = None if self._closed else self._input_problem(self._now())
            if problem is not None and not self._holding:
                self._hold(*problem)

    def step(self):
        with self._step_lock:
            if not self._closed:
                self._step()

    def _wake_step(self):
        if self._step_failure is not None:  # raised here, on the executor, so the process stops like on any callback
            raise self._step_failure
        self._step_wanted.set()

    def _step_loop(self):
        while not self._closed:
            self._step_wanted.wait()
            self._step_wanted.clear()
            try:
                self.step()
            except Exception as exc:
                self._step_failure = exc
                return

    def close(self):
        """Stop stepping and publishing; waits for a running step."""
        with self._step_lock, self._publish_lock:
            self._closed = True
        self._step_wanted.set()
        self._stepper.join()

    def destroy_node(self):
        self.close()
        super().destroy_node()

    def _step(self):
        now = self._now()
        problem = self._input_problem(now)
        if problem is not None:
            return self._skip(*problem)
        js_msg, js_received = self._joint_state
        frames = {camera: self._images[camera] for camera in self.config.cameras}
        try:
            q, _ = conversions.joint_state_to_arrays(js_msg, self.profile.joint_names)
            finger_q = self._finger_positions(js_msg)
            images = {}
            for camera, (msg, _) in frames.items():
                try:
                    images[camera] = conversions.camera_to_rgb(msg, self.config.image_size)
                except ValueError as exc:
                    raise ValueError(f'camera {camera}: {exc}') from None
        except ValueError as exc:
            return self._skip(PolicyNodeStatus.INVALID_INPUT, str(exc))
        # Without finger joints on /joint_states the gripper reading is the last command.
        observation = self.observer.observe(images, q, finger_q,
                                            gripper=self._gripper_command if finger_q is None else None)
        result = self.policy.act(observation)
        self.latency_pub.publish(Float64(data=result.latency_s * 1e3))
        self.latencies.append(result.latency_s)
        if result.status.name == 'LATE' or result.latency_s > self.config.deadline:
            return self._skip(PolicyNodeStatus.DEADLINE_MISSED,
                              f'step took {result.latency_s * 1e3:.1f} ms > deadline '
                              f'{self.config.deadline * 1e3:.1f} ms: result dropped')
        if result.action is None:
            return self._skip(PolicyNodeStatus.POLICY_ERROR, f'{result.status.name}: {result.reason}')
        t_q = _stamp(js_msg, js_received)
        observed = min([t_q] + [_stamp(*entry) for entry in frames.values()])
        proposal = self.action_space.proposal(self.kinematics, q, result.action, now=t_q, horizon=self.config.horizon,
                                              n_points=self.config.n_points, stamp=observed)
        with self._publish_lock:
            problem = self._input_problem(self._now())
            if self._closed or problem is not None:  # an input went stale while the policy ran
                return None if self._closed else self._hold(*problem)
            self._gripper_command = self.action_space.gripper_command(result.action)
            self.proposal_pub.publish(conversions.proposal_to_trajectory(proposal, self.profile.joint_names))
            self.tool_path_pub.publish(markers.tool_path([self.kinematics.tool_position(q)
                                                          for q in proposal.positions], self.frame))
            self.gripper_pub.publish(Float64(data=self._gripper_command))
            self._holding = False
            self._report(PolicyNodeStatus.OK, f'step {result.latency_s * 1e3:.1f} ms')

    def _publish_diagnostics(self):
        """/diagnostics like the safety controller's: the last step's status, the weights and the step latency."""
        status, reason = self._status or (PolicyNodeStatus.WAITING_FOR_INPUT, 'no step yet')
        latency = LatencySummary.from_seconds(list(self.latencies)[-100:])  # the last 10 s at 10 Hz
        values = {'status': status.name, 'reason': reason, 'robot': self.profile.name,
                  'weights': self._weights, 'device': self.config.device,
                  'rate_hz': f'{self.config.rate:g}', 'deadline_ms': f'{self.config.deadline * 1e3:.0f}',
                  'step_latency_p50_ms': f'{latency.p50_ms:.1f}' if latency.count else '',
                  'step_latency_max_ms': f'{latency.max_ms:.1f}' if latency.count else ''}
        array = conversions.diagnostic_array(f'gato_ros: {self.get_fully_qualified_name()}', status.level,
                                             f'{status.name}: {reason}', self.profile.name, values,
                                             self.get_clock().now().to_msg())
        with self._publish_lock:
            if not self._closed:
                self.diagnostics_pub.publish(array)

    def _finger_positions(self, msg: JointState) -> np.ndarray | None:
        """The finger joints' positions (profile order), None when /joint_states carries none of them."""
        index = {name: i for i, name in enumerate(msg.name)}
        if not all(name in index for name in self.profile.gripper_joint_names):
            return None
        return np.array([msg.position[index[name]] for name in self.profile.gripper_joint_names])

    def _skip(self, status: PolicyNodeStatus, reason: str):
        with self._publish_lock:
            if not self._closed:
                self._hold(status, reason)

    def _hold(self, status: PolicyNodeStatus, reason: str):
        """No proposal this step: tell the safety controller to hold, and say why (caller holds _publish_lock)."""
        hold = JointTrajectory(joint_names=list(self.profile.joint_names))
        hold.header.stamp = self.get_clock().now().to_msg()
        self.proposal_pub.publish(hold)
        self.tool_path_pub.publish(markers.tool_path([], self.frame))
        self._holding = True
        self._report(status, reason)

    def _report(self, status: PolicyNodeStatus, reason: str):
        self.status_pub.publish(String(data=f'{status.name}: {reason}'))
        changed = self._status is None or self._status[0] is not status
        self._status = (status, reason)
        log = self.get_logger()
        if status is PolicyNodeStatus.INVALID_INPUT:  # every rejected message deserves a line, throttled
            log.error(f'step skipped, {status.name}: {reason}', throttle_duration_sec=1.0)
        elif changed and status is PolicyNodeStatus.OK:
            log.info(f'stepping: {reason}')
        elif changed and status is PolicyNodeStatus.WAITING_FOR_INPUT:  # start-up: not a fault yet
            log.info(f'step skipped, {status.name}: {reason}')
        elif changed:
            log.warning(f'step skipped, {status.name}: {reason}')


def main(args=None) -> int:
    from gato_ros.ros.runtime import run_node_main

    return run_node_main(PolicyNode, args)


if __name__ == '__main__':
    sys.exit(main())
