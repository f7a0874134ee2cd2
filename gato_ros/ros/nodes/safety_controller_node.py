"""safety_controller_node: the only node that talks to the arm.

A fixed-rate timer (default 250 Hz) runs the SafetyFilter on the newest proposal (interpolated by
Proposal.sample), /joint_states, the speed scaling and the e-stop, and publishes the command on the profile's
command interface: forward_position / forward_velocity (Float64MultiArray) or joint_trajectory (one-point
JointTrajectory). An empty JointTrajectory on the proposal topic means "no valid proposal": brake to a hold.
Services ~/estop (SetBool: true asserts, false releases; the latch stays) and ~/reset (Trigger: clears the latch
only at rest). ~/status (String 'CODE: reason', latched, published on a change of code) and /diagnostics report
what the filter does. On shutdown the node keeps ticking without a proposal until the command is at rest,
publishing every step.

The tick and diagnostics timers run on the steady (wall) clock, whatever clock the node uses: on sim time a /clock
that stops advancing for stale_timeout, or goes backwards, brakes to a hold with STALE_INPUT 'clock: ...' instead of
silencing the controller. On sim time a second tick timer follows /clock, so every sim period gets its command.
A rejected /joint_states (duplicate or missing names, non-finite, outside the URDF limits, a jump faster than the
joint can move) brakes on that tick. ~/proposal is followed from one publisher only
(proposal_publisher, or the first one seen); see docs/safety.md.

  safety_controller_node --ros-args -p robot:=ur5e -p command_interface:=forward_position
"""

from __future__ import annotations

import collections
import re
import sys
import threading
import time

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup, ReentrantCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64, Float64MultiArray, String
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from gato_ros.core.robots import Kinematics, load_profile
from gato_ros.core.robots.kinematics import LinkGeometry
from gato_ros.core.safety import SafetyConfig, SafetyFilter, SafetyOutput, SafetyStatus
from gato_ros.ros import conversions, params
from gato_ros.ros.params import SafetyNodeConfig

COMMAND_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
_NUMBERS = re.compile(r'[-+]?\d+(\.\d+)?(e[-+]?\d+)?')
LOG_REPEAT = 1.0  # s: a code logged again for another reason within this is not logged again (it is on ~/status)
STATUS_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


class SafetyControllerNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__('safety_controller_node', namespace='/gato', **node_kwargs)
        cfg = self.config = params.declare(self, SafetyNodeConfig)
        self.profile = load_profile(cfg.robot)
        self.interface = cfg.command_interface or self.profile.command_interface
        self.command_topic = cfg.command_topic or self.profile.command_topic_for(self.interface)
        self.gripper_topic = cfg.gripper_topic or self.profile.gripper_topic
        self.period = 1.0 / cfg.rate
        velocity = self.interface == 'forward_velocity'
        safety = SafetyConfig.from_profile(self.profile, margin=cfg.position_margin, stale_timeout=cfg.stale_timeout,
                                           dt=self.period, max_dt=max(0.01, 2.5 * self.period),
                                           state_tolerance=cfg.state_tolerance, jump_tolerance=cfg.jump_tolerance,
                                           track_measured=velocity, tracking_error_limit=cfg.tracking_error_limit)
        kinematics = Kinematics(self.profile)
        self.filter = SafetyFilter(safety, kinematics.tool_position,
                                   links=LinkGeometry(kinematics) if cfg.link_check else None)

        # Latest inputs, stored by the callbacks and consumed by the tick.
        self._joint_state: tuple[JointState, float] | None = None
        self._trajectory: JointTrajectory | None = None
        self._gripper: float | None = None
        self._speed_scale = 1.0
        self._estop = False
        # Tick state.
        self._seen_joint_state = None
        self._measured: tuple[np.ndarray, np.ndarray, float] | None = None  # q, qd, stamp
        self._seen_trajectory = None
        self._proposal = None
        self._sent_gripper: float | None = None
        self._last_tick: float | None = None
        self._status = (SafetyStatus.STALE_INPUT, 'no /joint_states yet: no command published')
        self._joint_fault: str = ''      # the newest /joint_states was rejected: why (brake until a valid one)
        self._proposal_fault: str = ''   # the newest proposal was rejected or ignored: why
        self._followed = False           # a proposal has been accepted (until then a hold is the start-up state)
        self._logged_at = -LOG_REPEAT    # monotonic time of the last status log line
        # Clock watchdog (wall time): last ROS time seen advancing and when; a backwards jump being braked.
        self._clock_progress: tuple[float, float] | None = None
        self._clock_back = ''
        # Who may command: the accepted ~/proposal publisher (name, gid hex) and the messages ignored.
        self._proposal_source: str | None = None  # node name (or configured GID) of the accepted publisher
        self.ignored_proposals = 0
        self._command_publishers: tuple[str, ...] = ()
        self.output: SafetyOutput | None = None
        # Publication times for rate, jitter and gaps: monotonic, and the filter's time of each command (the node's
        # clock: sim time in the demo).
        self.publish_times = collections.deque(maxlen=int(cfg.rate * 120))
        self.publish_stamps = collections.deque(maxlen=int(cfg.rate * 120))
        self._lock = threading.Lock()  # tick, services, diagnostics and close never interleave
        self._closed = False

        inputs, loop = ReentrantCallbackGroup(), MutuallyExclusiveCallbackGroup()
        self.create_subscription(JointState, cfg.joint_states_topic, self._store_joint_state,
                                 qos_profile_sensor_data, callback_group=inputs)
        self._proposal_sub = self.create_subscription(JointTrajectory, cfg.proposal_topic, self._store_trajectory,
                                                      COMMAND_QOS, callback_group=inputs)
        self.create_subscription(Float64, cfg.gripper_command_topic, self._store_gripper, COMMAND_QOS,
                                 callback_group=inputs)
        self.create_subscription(Float64, cfg.speed_scaling_topic, self._store_speed_scaling, 1,
                                 callback_group=inputs)
        msg_type = JointTrajectory if self.interface == 'joint_trajectory' else Float64MultiArray
        self.command_pub = self.create_publisher(msg_type, self.command_topic, COMMAND_QOS)
        self.gripper_pub = self.create_publisher(Float64MultiArray, self.gripper_topic, COMMAND_QOS)
        self.status_pub = self.create_publisher(String, '~/status', STATUS_QOS)
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        # Services share the tick's group: e-stop and reset never interleave with a filter tick.
        self.create_service(SetBool, '~/estop', self._on_estop, callback_group=loop)
        self.create_service(Trigger, '~/reset', self._on_reset, callback_group=loop)
        # Both timers on the steady clock: a stalled or backwards /clock must not silence the controller.
        wall = Clock(clock_type=ClockType.STEADY_TIME)
        self._tick_timers = [self.create_timer(self.period, self.tick, loop, clock=wall)]
        if self.get_parameter('use_sim_time').value:
            # Also tick on each sim period as /clock reaches it: a wall timer alone beats against the sim's steps
            # (two steps between two ticks give one command for two periods: 8-12 % of the commands lost in the
            # demo). A tick finds the clock advanced or returns, so each sim period gets one command.
            self._tick_timers.append(self.create_timer(self.period, self.tick, loop))
        self.create_timer(1.0 / cfg.diagnostics_rate, self._publish_diagnostics, MutuallyExclusiveCallbackGroup(),
                          clock=wall)
        self.get_logger().info(f'{self.profile.name}: {self.interface} on {self.command_topic} at {cfg.rate:g} Hz, '
                               f'gripper on {self.gripper_topic}')

    # -- callbacks: store only -----------------------------------------------------------------------------------

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _clock_fault(self, now: float) -> str:
        """Wall-clock watchdog of the node's clock: '' while it advances, else why the tick brakes."""
        wall = time.monotonic()
        if self._clock_progress is None or now > self._clock_progress[0]:
            self._clock_progress = (now, wall)
        elif now < self._clock_progress[0] - 1e-9 and self._clock_back:
            self._clock_progress = (now, wall)  # stepped back again while braking
        if self._last_tick is not None and now < self._last_tick and not self._clock_back:
            self._clock_progress = (now, wall)  # the new time line is the one to watch from here
            self._clock_back = (f'clock: time went backwards from {self._last_tick:.3f} s to {now:.3f} s: braking to '
                                'a hold, then restarting on the new time')
        if self._clock_back:
            return self._clock_back
        silent = wall - self._clock_progress[1]
        if silent > self.config.stale_timeout:
            return (f'clock: no progress for {silent:.3f} s (stale_timeout {self.config.stale_timeout} s; stuck at '
                    f'{now:.3f} s): braking to a hold')
        return ''

    def _store_joint_state(self, msg):
        self._joint_state = (msg, self._now())

    def _store_trajectory(self, msg):
        # Who sent it can only be judged now: the matched writers and the graph at receipt (see _judge_source).
        self._trajectory = (msg, self._proposal_sub.get_publisher_count(),
                            self.get_publishers_info_by_topic(self._proposal_sub.topic_name))

    def _store_gripper(self, msg):
        self._gripper = msg.data

    def _store_speed_scaling(self, msg):
        if np.isfinite(msg.data):
            self._speed_scale = float(np.clip(msg.data / 100.0, 0.0, 1.0))
        else:
            self._speed_scale = 0.0
            self.get_logger().error(f'speed scaling {msg.data} is not finite: treated as 0 %')

    def _on_estop(self, request, response):
        self._estop = request.data  # read by the next tick
        response.success = True
        response.message = ('e-stop asserted: braking to a hold' if request.data else
                            'e-stop released; the latch stays until ~/reset')
        self.get_logger().warning(response.message)
        return response

    def _on_reset(self, request, response):
        with self._lock:
            response.success, response.message = self.filter.request_reset()
        self.get_logger().info(f'reset: {response.message}')
        return response

    # -- the control tick ----------------------------------------------------------------------------------------

    def _update_inputs(self):
        """Convert the newest /joint_states and proposal once each; a rejected one is remembered (the tick brakes
        with its reason) until a valid one replaces it."""
        entry = self._joint_state
        if entry is not None and entry is not self._seen_joint_state:
            self._seen_joint_state = entry
            msg, received = entry
            try:
                duplicates = sorted({n for n in msg.name if list(msg.name).count(n) > 1})
                if duplicates:
                    raise ValueError(f'duplicate joint name(s) {duplicates}')
                q, qd = conversions.joint_state_to_arrays(msg, self.profile.joint_names)
                stamp = conversions.to_seconds(msg.header.stamp) or received
                self._measured = (q, qd, stamp)
                self._joint_fault = ''
            except ValueError as exc:
                self._joint_fault = f'/joint_states rejected: {exc}: braking'
        entry = self._trajectory
        if entry is not self._seen_trajectory:
            self._seen_trajectory = entry
            self._proposal = None
            self._proposal_fault = ''
            if entry is not None:
                msg, count, publishers = entry
                ignored = self._judge_source(count, publishers)
                if ignored:
                    self.ignored_proposals += 1
                    self._proposal_fault = ignored
                elif msg.points:
                    try:
                        self._proposal = conversions.trajectory_to_proposal(msg, self.profile.joint_names)
                        self._followed = True
                    except ValueError as exc:
                        self._proposal_fault = f'proposal rejected: {exc}: braking'

    def _judge_source(self, count: int, publishers) -> str:
        """'' when the proposal can only have come from the accepted publisher, else why it is ignored.

        rclpy hands a message over without its publisher's GID, so a proposal is followed only while the accepted
        publisher is the one writer matched on the topic; with any other writer present none is followed (brake):
        the safe reading of an ambiguous sender. SROS2 keeps other writers off the topic (docs/safety.md).
        """
        found = [(conversions_name(info), ''.join(f'{b:02x}' for b in info.endpoint_gid)) for info in publishers]
        topic = self._proposal_sub.topic_name
        if any('_NODE_NAME_UNKNOWN_' in name for name, _ in found):
            return f'proposal ignored: a publisher on {topic} is not identified yet (discovery): braking'
        if self._proposal_source is None:
            if self.config.proposal_publisher:
                self._proposal_source = self.config.proposal_publisher
            elif len(found) == 1 and count == 1:
                self._proposal_source = found[0][0]  # the first publisher: by node name, so it may restart
            else:
                return (f'proposal ignored: waiting for a single publisher on {topic}; matched {count}, seen '
                        f'{[f"{n} (gid {g})" for n, g in found] or "none"}: braking')
            self.get_logger().info(f'~/proposal: following {self._proposal_source} only')
        source = self._proposal_source
        others = [f'{name} (gid {gid})' for name, gid in found if source not in (name, gid)]
        if others or count != 1 or len(found) != 1:
            return (f'proposal ignored: {topic} has publisher(s) other than {source}: '
                    f'{others or f"{count} matched writers, {len(found)} in the graph"}; none is followed while '
                    'another publishes: braking')
        return ''

    def tick(self):
        with self._lock:
            if not self._closed:
                self._tick()

    def _tick(self):
        now = self._now()
        clock = self._clock_fault(now)
        if not clock and self._last_tick is not None and now <= self._last_tick:
            return  # on sim time the wall timer runs ahead of /clock: the last command is still current
        self._update_inputs()
        if self.output is None:
            self._start(clock)
            return
        q, qd, stamp = self._measured
        fault = None
        for status, reason in ((SafetyStatus.STALE_INPUT, clock), (SafetyStatus.INVALID_INPUT, self._joint_fault),
                               (SafetyStatus.INVALID_INPUT, self._proposal_fault)):
            if reason:
                fault = (status, reason)
                break
        if not clock:
            self._last_tick = now
        out = self.filter.tick(now, q, qd, self._proposal, now - stamp, self._speed_scale, self._estop, fault=fault)
        self._send(out, now)
        if self._clock_back and not np.any(out.velocities) and self.filter.restart_clock():
            self.get_logger().warning('clock went backwards: command at rest, restarting on the new time')
            self._clock_back, self._last_tick = '', None

    def _start(self, clock: str):
        """Before the first command: start the filter from a valid, plausible /joint_states (no command until then)."""
        if self._measured is None or self._joint_fault:
            reason = self._joint_fault or 'no valid /joint_states yet'
            code = SafetyStatus.INVALID_INPUT if self._joint_fault else SafetyStatus.STALE_INPUT
            self._report(code, f'{reason}: no command published')
            return
        if clock:
            self._report(SafetyStatus.STALE_INPUT, f'{clock}: no command published')
            return
        try:
            self.filter.reset(self._measured[0])
        except ValueError as exc:
            self._measured = None
            self._report(SafetyStatus.INVALID_INPUT, f'/joint_states rejected: {exc}: no command published')
            return
        q, qd, stamp = self._measured
        now = self._now()
        self._last_tick = now
        self._send(self.filter.tick(now, q, qd, self._proposal, now - stamp, self._speed_scale, self._estop), now)

    def _send(self, out: SafetyOutput, now: float):
        self.output = out
        if self.interface == 'forward_position':
            self.command_pub.publish(conversions.float64_array(out.positions))
        elif self.interface == 'forward_velocity':
            self.command_pub.publish(conversions.float64_array(out.velocities))
        else:
            self.command_pub.publish(conversions.trajectory_command(self.profile.joint_names, out.positions,
                                                                    out.velocities, self.period))
        self.publish_times.append(time.monotonic())
        self.publish_stamps.append(now)
        gripper = self._gripper
        if gripper is not None and gripper != self._sent_gripper and not self.filter.estop_latched:
            if np.isfinite(gripper):
                self.gripper_pub.publish(conversions.float64_array([float(np.clip(gripper, 0.0, 1.0))]))
            else:
                self.get_logger().error(f'gripper command {gripper} is not finite: ignored')
            self._sent_gripper = gripper
        self._report(out.status, out.reason)

    def close(self) -> int:
        """Shutdown: stop the timer, then tick without a proposal until the command is at rest, publishing each
        step. Returns the number of commands sent. Paces itself and keeps its own time (the executor is gone)."""
        with self._lock:
            self._closed = True
            for timer in self._tick_timers:
                timer.cancel()
            return self._brake_to_hold()

    def _brake_to_hold(self) -> int:
        if self.output is None:
            return 0
        q, qd, _ = self._measured
        now, sent = self._last_tick, 0
        deadline = time.monotonic() + self.config.shutdown_timeout
        while time.monotonic() < deadline:
            now += self.period
            out = self.filter.tick(now, q, qd, None, 0.0, self._speed_scale, self._estop)
            self._send(out, now)
            sent += 1
            if not np.any(out.velocities):
                break
            time.sleep(self.period)
        at_rest = not np.any(self.output.velocities)
        reason = 'shutdown: ' + ('command at rest' if at_rest else 'shutdown_timeout reached while braking')
        self.status_pub.publish(String(data=f'{self.output.status.name}: {reason}'))
        return sent

    # -- reporting -----------------------------------------------------------------------------------------------

    def command_stats(self) -> dict[str, float]:
        """Measured command rate (Hz) and interval jitter (ms) over the last 10 s of publications."""
        intervals = np.diff(np.asarray(self.publish_times)[-int(self.config.rate * 10):])
        if intervals.size < 2:
            return {'rate_hz': 0.0, 'interval_mean_ms': 0.0, 'jitter_std_ms': 0.0, 'interval_p99_ms': 0.0,
                    'interval_max_ms': 0.0}
        return {'rate_hz': 1.0 / intervals.mean(), 'interval_mean_ms': intervals.mean() * 1e3,
                'jitter_std_ms': intervals.std() * 1e3, 'interval_p99_ms': np.percentile(intervals, 99) * 1e3,
                'interval_max_ms': intervals.max() * 1e3}

    def _report(self, status: SafetyStatus, reason: str):
        """Status topic and log on every change of code; the periodic diagnostics carry the latest reason."""
        previous = self._status
        self._status = (status, reason)
        log = self.get_logger()
        # A change of state is a change of code or of the kind of reason (its text without the numbers), so a new
        # fault under the same code is reported once, and a reason whose figures move every tick is not repeated.
        if status is previous[0] and _NUMBERS.sub('#', reason) == _NUMBERS.sub('#', previous[1]):
            return
        self.status_pub.publish(String(data=f'{status.name}: {reason}'))
        now = time.monotonic()
        if status is previous[0] and now - self._logged_at < LOG_REPEAT:
            return  # the same code for another reason (tool, then a link, at the table): ~/status has it
        self._logged_at = now
        if status is SafetyStatus.OK:
            log.info('OK: following the proposal')
        elif status is not SafetyStatus.ESTOP and (self._closed or not self._followed):
            # Holding before the first proposal was followed (inputs, /clock, discovery still arriving) or while
            # shutting down is the expected state, not a fault: ~/status says the same at its level.
            log.info(f"{'shutdown' if self._closed else 'starting, holding the arm'}: {status.name}: {reason}")
        elif status is SafetyStatus.INVALID_INPUT:
            log.error(f'{status.name}: {reason}')
        else:
            log.warning(f'{status.name}: {reason}')

    def _publish_diagnostics(self):
        with self._lock:
            if not self._closed:
                self._diagnostics()

    def _check_command_topic(self) -> tuple[str, ...]:
        """Other nodes publishing on the command topic (this node cannot stop them; it warns on every change)."""
        me = (self.get_name(), self.get_namespace())
        others = tuple(sorted(conversions_name(info) for info in self.get_publishers_info_by_topic(self.command_topic)
                              if (info.node_name, info.node_namespace) != me))
        if others != self._command_publishers:
            self._command_publishers = others
            if others:
                self.get_logger().warning(f'another node publishes on the command topic {self.command_topic}: '
                                          f'{list(others)}: the arm may execute commands this controller never '
                                          'checked (use SROS2, docs/safety.md)')
        return others

    def _diagnostics(self):
        others = self._check_command_topic()
        status, reason = self._status
        self.status_pub.publish(String(data=f'{status.name}: {reason}'))
        stats = self.command_stats()
        values = {'status': status.name, 'reason': reason, 'robot': self.profile.name,
                  'command_interface': self.interface, 'command_topic': self.command_topic,
                  'estop_latched': str(self.filter.estop_latched), 'speed_scale': f'{self._speed_scale:.2f}',
                  'command_rate_hz': f'{stats["rate_hz"]:.1f}', 'jitter_std_ms': f'{stats["jitter_std_ms"]:.2f}',
                  'interval_max_ms': f'{stats["interval_max_ms"]:.1f}',
                  'proposal_publisher': self._proposal_source or '',
                  'ignored_proposals': str(self.ignored_proposals),
                  'other_command_publishers': ', '.join(others)}
        diag = DiagnosticStatus(level=bytes([status.level]), name=f'gato_ros: {self.get_fully_qualified_name()}',
                                message=f'{status.name}: {reason}' if reason else status.name,
                                hardware_id=self.profile.name,
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])
        array = DiagnosticArray(status=[diag])
        array.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(array)


def conversions_name(info) -> str:
    """Fully qualified node name of a TopicEndpointInfo."""
    namespace = info.node_namespace.rstrip('/')
    return f'{namespace}/{info.node_name}'


def main(args=None) -> int:
    from gato_ros.ros.runtime import run_node_main

    return run_node_main(SafetyControllerNode, args)


if __name__ == '__main__':
    sys.exit(main())
