"""sim_node: the embedded MuJoCo stacking simulation behind the same topics as a real UR driver.

Publishes /joint_states (arm + fingers), /camera/<name>/image_raw (rgb8) with /camera/<name>/camera_info (the
MuJoCo camera's intrinsics), /clock (run the other nodes with use_sim_time) and /gato/sim/task_status (JSON).
Sensor topics have the QoS of the real drivers (REP-2003): reliable, depth 10, like ros2_control's
joint_state_broadcaster and image_transport's camera publishers; best-effort (SensorDataQoS) subscribers, as
policy_node's, match them, and so do reliable ones (rviz, ros2 bag). Accepts the ros2_control command topics of a
UR driver: forward_position and forward_velocity (Float64MultiArray, profile joint order), joint_trajectory
(JointTrajectory, matched by joint name) and the gripper (Float64MultiArray, one value 0 open .. 1 closed).
Like the real forward controllers, the last command is kept: a position is held, a velocity keeps moving.

Callbacks only store the latest message; a fixed-rate timer validates commands, advances the simulation by the
elapsed wall time times rate_factor and publishes /joint_states and /clock. The cameras render in a thread of their
own, from a copy of the state taken between two steps: a frame pair costs ~10 ms of software GL here (it releases
the GIL), which inside the tick held /clock back by 2-4 safety ticks at every frame. Frames come every
1/camera_rate of sim time, as a Gazebo camera's: when rendering falls behind (a busy CPU), physics waits for the
frame instead of running ahead of it, so the newest image is never older than 1/camera_rate + CAMERA_LAG of sim
time and a policy never sees a stale camera because the renderer lagged. ~/reset (std_srvs/Trigger) starts the
next episode with the next seed; /clock keeps increasing across episodes.

  sim_node --ros-args -p robot:=sawyer -p rate_factor:=2.0
"""

from __future__ import annotations

import json
import sys
import threading
import time

import mujoco
import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from gato_ros.core.safety import Proposal
from gato_ros.core.sim import SimConfig, SimState, StackingSim
from gato_ros.ros import conversions, params
from gato_ros.ros.params import SimNodeConfig

# Periods of sim time one tick may advance after a late tick; the rest is dropped, not replayed (the sim falls
# behind the wall clock: real-time factor < 1). The arm meets each command for at most this much physics, so a
# late tick never shows the safety controller a gap of more than ~3 of its ticks in sim time (0.1 s showed 25).
MAX_CATCH_UP_TICKS = 2
COMMAND_QOS = 1     # reliable, depth 1: only the newest command matters
SENSOR_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)  # joint_state_broadcaster, cameras
# Sim time (s) physics may run past a due camera frame before it waits for the renderer: enough for a frame pair
# rendered at real time. A frame is at most 1/camera_rate + CAMERA_LAG old when the next one is published (87 ms at
# the 15 Hz default), and policy_node's stale_timeout (0.15 s) leaves the rest for delivery.
CAMERA_LAG = 0.02


class SimNode(Node):
    def __init__(self, **node_kwargs):
        super().__init__('sim_node', **node_kwargs)
        self.config = cfg = params.declare(self, SimNodeConfig)
        self.sim = StackingSim(SimConfig(robot=cfg.robot, task=tuple(cfg.task), cameras=tuple(cfg.cameras),
                                         image_size=cfg.image_size))
        self.profile = self.sim.profile
        self._seed = cfg.seed
        self._clock_offset = 0.0  # sim time of earlier episodes: /clock never goes backwards
        self._start_episode()

        self._inbox: dict[str, object] = {}  # topic -> latest unprocessed message
        self._reset_requested = False
        sub = self.create_subscription
        sub(Float64MultiArray, cfg.position_command_topic, self._store(cfg.position_command_topic), COMMAND_QOS)
        sub(Float64MultiArray, cfg.velocity_command_topic, self._store(cfg.velocity_command_topic), COMMAND_QOS)
        sub(JointTrajectory, cfg.trajectory_command_topic, self._store(cfg.trajectory_command_topic), COMMAND_QOS)
        sub(Float64MultiArray, cfg.gripper_topic, self._store(cfg.gripper_topic), COMMAND_QOS)
        self.create_service(Trigger, '~/reset', self._on_reset)
        self.joint_pub = self.create_publisher(JointState, cfg.joint_states_topic, SENSOR_QOS)
        self.clock_pub = self.create_publisher(Clock, '/clock', 10)
        self.status_pub = self.create_publisher(String, cfg.task_status_topic, 10)
        self.image_pubs = {name: self.create_publisher(Image, params.camera_topic(name), SENSOR_QOS)
                           for name in cfg.cameras}
        self.info_pubs = {name: self.create_publisher(CameraInfo, f'/camera/{name}/camera_info', SENSOR_QOS)
                          for name in cfg.cameras}
        model = self.sim.model
        self.camera_infos = {name: conversions.camera_info(float(model.cam_fovy[model.camera(name).id]),
                                                           cfg.image_size, cfg.image_size, name)
                             for name in cfg.cameras}
        self._last_wall = time.monotonic()
        self._debt = 0.0  # sim time owed to the wall clock, < one physics step after each tick
        self._next_status = self._last_wall
        # mj_step releases the GIL: no reader (expert, cameras) sees a mid-step state. A Condition: the camera thread
        # also waits on it for the sim time of its next frame.
        self._sim_lock = threading.Condition()
        self._frame_period = 1.0 / cfg.camera_rate   # sim time
        self._frame_due = self._frame_published = self.clock
        self._rendering = True
        self._camera_thread = threading.Thread(target=self._camera_loop, name='sim-cameras', daemon=True)
        self._camera_thread.start()
        self.create_timer(1.0 / cfg.rate, self._locked_tick)
        self.get_logger().info(f'{self.profile.name}: stack {cfg.task[0]} on {cfg.task[1]}, seed {self._seed}, '
                               f'{cfg.rate:g} Hz x{cfg.rate_factor:g}, cameras {list(cfg.cameras)} '
                               f'{cfg.image_size}px at {cfg.camera_rate:g} Hz')

    # -- callbacks: store only ---------------------------------------------------------------------------------

    def _store(self, topic: str):
        def store(msg):
            self._inbox[topic] = msg
        return store

    def _on_reset(self, request, response):
        self._reset_requested = True
        response.success, response.message = True, f'reset to seed {self._seed + 1} on the next tick'
        return response

    # -- fixed-rate loop ---------------------------------------------------------------------------------------

    def _start_episode(self) -> None:
        self._clock_offset += self.sim.time
        self.sim.reset(self._seed)
        self._target = self.sim.joint_positions()[0]   # forward_position: hold the seed's start pose
        self._velocity: np.ndarray | None = None                    # forward_velocity: keeps moving
        self._trajectory: Proposal | None = None                     # joint_trajectory, in sim time
        self._gripper = 0.0

    @property
    def clock(self) -> float:
        return self._clock_offset + self.sim.time

    def privileged_state(self) -> SimState:
        """The full simulator state (block poses included) between two ticks, safe from another thread: for the
        scripted expert of an in-process demo (gato_ros/ros/demo/expert.py), never for a learned policy."""
        with self._sim_lock:
            return self.sim.state()

    def _locked_tick(self) -> None:
        with self._sim_lock:
            self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        if self._reset_requested:
            self._reset_requested = False
            self._seed += 1
            self._start_episode()
            self.get_logger().info(f'episode reset, seed {self._seed}')
        self._take_commands()
        timestep = self.sim.model.opt.timestep
        cfg = self.config
        self._debt = min(self._debt + (now - self._last_wall) * cfg.rate_factor,
                         MAX_CATCH_UP_TICKS * cfg.rate_factor / cfg.rate)
        self._last_wall = now
        substeps = int(self._debt / timestep)
        unrendered = self._frame_published + self._frame_period + CAMERA_LAG - self.clock  # sim time to go
        if substeps * timestep > unrendered:  # the renderer is behind: wait for its frame, drop the debt
            substeps = max(0, int(unrendered / timestep))
            self._debt = substeps * timestep
        if substeps:
            duration = substeps * timestep
            self._debt -= duration
            self.sim.step(self._command_at(self.sim.time + duration, duration), self._gripper, duration)
        self._publish_joint_states()
        self.clock_pub.publish(Clock(clock=conversions.to_time_msg(self.clock)))
        if now >= self._next_status:
            self._next_status = max(self._next_status + 1.0 / self.config.status_rate, now)
            self._publish_status()
        self._sim_lock.notify_all()

    def _command_at(self, t: float, duration: float) -> np.ndarray:
        """Joint position command for sim time t under the active command interface."""
        if self._trajectory is not None:
            self._target = self._trajectory.sample(t)
        elif self._velocity is not None:
            self._target = np.clip(self._target + self._velocity * duration, self.profile.lower, self.profile.upper)
        return self._target

    def _take_commands(self) -> None:
        """Validate the messages that arrived since the last tick; a bad one is logged and ignored."""
        cfg, n = self.config, len(self.profile.joint_names)
        for topic, msg in self._inbox.items():
            try:
                if topic == cfg.gripper_topic:
                    self._gripper = float(np.clip(_values(msg.data, 1)[0], 0.0, 1.0))
                elif topic == cfg.trajectory_command_topic:
                    proposal = conversions.trajectory_to_proposal(msg, self.profile.joint_names)
                    if proposal.stamp == 0.0:  # "start now": times are relative to receipt
                        proposal = Proposal(self.sim.time, proposal.times + self.sim.time, proposal.positions)
                    else:  # stamped on /clock: convert to this episode's sim time
                        proposal = Proposal(proposal.stamp - self._clock_offset,
                                            proposal.times - self._clock_offset, proposal.positions)
                    if np.any(np.diff(proposal.times) <= 0):
                        raise ValueError('point times must increase strictly')
                    self._trajectory, self._velocity = proposal, None
                elif topic == cfg.velocity_command_topic:
                    self._velocity, self._trajectory = _values(msg.data, n), None
                    self._target = self.sim.joint_positions()[0]  # integrate from where the arm is
                else:
                    self._target, self._velocity, self._trajectory = _values(msg.data, n), None, None
            except ValueError as error:
                self.get_logger().error(f'rejected message on {topic}: {error}')
        self._inbox.clear()

    def _publish_joint_states(self) -> None:
        position, velocity = self.sim.all_joints()
        msg = JointState(name=list(self.sim.joint_names), position=position.tolist(), velocity=velocity.tolist())
        msg.header.stamp = conversions.to_time_msg(self.clock)
        self.joint_pub.publish(msg)

    def _camera_loop(self) -> None:
        """A frame every 1/camera_rate of sim time from a copy of the state; the renderer's GL context is made and
        closed here."""
        snapshot = mujoco.MjData(self.sim.model)
        lock = self._sim_lock
        try:
            while True:
                with lock:
                    lock.wait_for(lambda: not self._rendering or self.clock >= self._frame_due)
                    if not self._rendering:
                        return
                    mujoco.mj_copyData(snapshot, self.sim.model, self.sim.data)
                    stamp = self.clock
                    self._frame_due = stamp + self._frame_period
                self._publish_images(self.sim.render(snapshot), conversions.to_time_msg(stamp))
                with lock:
                    self._frame_published = stamp
        finally:
            self.sim.close()

    def _publish_images(self, images: dict[str, np.ndarray], stamp) -> None:
        for name, rgb in images.items():
            msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding='rgb8', step=rgb.shape[1] * 3,
                        data=rgb.tobytes())
            msg.header.stamp, msg.header.frame_id = stamp, name
            self.image_pubs[name].publish(msg)
            info = self.camera_infos[name]
            info.header.stamp = stamp
            self.info_pubs[name].publish(info)

    def _publish_status(self) -> None:
        status = self.sim.task_status()
        self.status_pub.publish(String(data=json.dumps({
            'seed': self._seed, 'task': list(self.config.task), 'time': round(self.sim.time, 3),
            'success': status.success, 'stacked': status.stacked, 'stacked_for': round(status.stacked_for, 3),
            'failed': status.failed, 'reason': status.reason})))

    def destroy_node(self):
        with self._sim_lock:
            self._rendering = False
            self._sim_lock.notify_all()
        self._camera_thread.join()
        super().destroy_node()


def _values(data, length: int) -> np.ndarray:
    values = np.asarray(data, dtype=np.float64)
    if values.shape != (length,):
        raise ValueError(f'expected {length} values, got {values.size}')
    if not np.all(np.isfinite(values)):
        raise ValueError(f'non-finite value in {values.tolist()}')
    return values


def main(args=None) -> int:
    from gato_ros.ros.runtime import run_node_main

    return run_node_main(SimNode, args)  # one executor thread: the EGL renderer is bound to its camera thread


if __name__ == '__main__':
    sys.exit(main())
