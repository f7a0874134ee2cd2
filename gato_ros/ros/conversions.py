"""Messages <-> core types. Pure functions: no node, no clock; every error names the problem.

Times are float seconds on the node's clock; stamps convert with `to_seconds` / `to_time_msg`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from gato_ros.core.safety import Proposal
# The nodes convert images and joint states with these (pure: they read any message-shaped object).
from gato_ros.core.sensors import camera_to_rgb, compressed_to_rgb, image_to_rgb, joint_state_to_arrays  # noqa: F401


def to_seconds(stamp: Time | Duration) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_time_msg(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def to_duration_msg(seconds: float) -> Duration:
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def proposal_to_trajectory(proposal: Proposal, joint_names: Sequence[str]) -> JointTrajectory:
    """Proposal (absolute times) -> JointTrajectory stamped at proposal.stamp, points relative to it."""
    msg = JointTrajectory(joint_names=list(joint_names))
    msg.header.stamp = to_time_msg(proposal.stamp)
    msg.points = [JointTrajectoryPoint(positions=[float(x) for x in row],
                                       time_from_start=to_duration_msg(t - proposal.stamp))
                  for t, row in zip(proposal.times, proposal.positions)]
    return msg


def trajectory_to_proposal(msg: JointTrajectory, joint_names: Sequence[str]) -> Proposal:
    """JointTrajectory -> Proposal in `joint_names` order (matched by name; every arm joint must be present)."""
    if not msg.points:
        raise ValueError('JointTrajectory has no points')
    index = {name: i for i, name in enumerate(msg.joint_names)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise ValueError(f'JointTrajectory is missing joint(s) {missing}; it has {list(msg.joint_names)}')
    order = [index[name] for name in joint_names]
    for k, point in enumerate(msg.points):
        if len(point.positions) != len(msg.joint_names):
            raise ValueError(f'JointTrajectory point {k} has {len(point.positions)} positions '
                             f'for {len(msg.joint_names)} joints')
    stamp = to_seconds(msg.header.stamp)
    times = stamp + np.array([to_seconds(p.time_from_start) for p in msg.points])
    positions = np.array([p.positions for p in msg.points], dtype=float)[:, order]
    if not np.all(np.isfinite(positions)):
        raise ValueError('JointTrajectory has non-finite positions')
    return Proposal(stamp=stamp, times=times, positions=positions)


def float64_array(values: Sequence[float]) -> Float64MultiArray:
    """Command for forward_position / forward_velocity controllers (and the gripper), joint order as given."""
    return Float64MultiArray(data=[float(v) for v in values])


def trajectory_command(joint_names: Sequence[str], positions, velocities, time_from_start: float) -> JointTrajectory:
    """One-point streaming command for joint_trajectory_controller: header stamp 0 means 'start now'."""
    point = JointTrajectoryPoint(positions=[float(v) for v in positions],
                                 velocities=[float(v) for v in velocities],
                                 time_from_start=to_duration_msg(time_from_start))
    return JointTrajectory(joint_names=list(joint_names), points=[point])


def camera_info(fovy_deg: float, width: int, height: int, frame_id: str) -> CameraInfo:
    """CameraInfo of an ideal pinhole camera with vertical field of view `fovy_deg` (a MuJoCo camera): square
    pixels, fx = fy = (height/2) / tan(fovy/2), principal point at the image centre ((w-1)/2, (h-1)/2 in
    pixel-centre coordinates), no distortion, rectified = raw."""
    f = (height / 2.0) / math.tan(math.radians(fovy_deg) / 2.0)
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    info = CameraInfo(width=width, height=height, distortion_model='plumb_bob', d=[0.0] * 5,
                      k=[f, 0.0, cx, 0.0, f, cy, 0.0, 0.0, 1.0], r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                      p=[f, 0.0, cx, 0.0, 0.0, f, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    info.header.frame_id = frame_id
    return info


def diagnostic_array(name: str, level: int, message: str, hardware_id: str, values: dict,
                     stamp: Time) -> DiagnosticArray:
    """One DiagnosticStatus (level 0 OK, 1 WARN, 2 ERROR) for /diagnostics; values are shown as text."""
    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = stamp
    return array
