"""Messages <-> core types. Pure functions: no node, no clock; every error names the problem.

Times are float seconds on the node's clock; stamps convert with `to_seconds` / `to_time_msg`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from gato_ros.core.safety import Proposal

# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
_ENCODINGS = {
    'rgb8': (3, None),
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
}
COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')


def to_seconds(stamp: Time | Duration) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_time_msg(seconds: float) -> Time:
    ns = int(round(seconds * 1e9))
    return Time(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def to_duration_msg(seconds: float) -> Duration:
    ns = int(round(seconds * 1e9))
    return Duration(sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[:2] != (size, size):
        # INTER_AREA averages source pixels: no aliasing when shrinking camera frames to model size.
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def image_to_rgb(msg: Image, size: int) -> np.ndarray:
    """sensor_msgs/Image (rgb8, bgr8, rgba8, bgra8, mono8; `step` row padding honoured) -> (size, size, 3) uint8."""
    if msg.encoding not in _ENCODINGS:
        raise ValueError(f'unsupported image encoding {msg.encoding!r}; expected one of {sorted(_ENCODINGS)}')
    channels, conversion = _ENCODINGS[msg.encoding]
    height, width, step = msg.height, msg.width, msg.step
    if height == 0 or width == 0:
        raise ValueError(f'empty image: {width}x{height}')
    if step < width * channels:
        raise ValueError(f'image step {step} is smaller than width*channels = {width}*{channels} '
                         f'for encoding {msg.encoding}')
    if len(msg.data) != step * height:
        raise ValueError(f'image data has {len(msg.data)} bytes, expected step*height = {step}*{height} '
                         f'= {step * height}')
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(height, step)
    pixels = rows[:, :width * channels].reshape(height, width, channels)
    if conversion is None:
        return _resize(pixels, size)
    return _resize(cv2.cvtColor(pixels, conversion), size)


def compressed_to_rgb(msg: CompressedImage, size: int) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png, image_transport's format string) -> (size, size, 3) uint8."""
    fmt = msg.format.lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ValueError(f'unsupported compressed image format {msg.format!r}; expected jpeg or png')
    bgr = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'could not decode {len(msg.data)} bytes of {msg.format!r} compressed image data')
    return _resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)


def camera_to_rgb(msg: Image | CompressedImage, size: int) -> np.ndarray:
    if isinstance(msg, CompressedImage):
        return compressed_to_rgb(msg, size)
    return image_to_rgb(msg, size)


def joint_state_to_arrays(msg: JointState, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """JointState -> (q, qd) in `joint_names` order, matched by name; extra joints (fingers) are ignored.

    Velocity may be omitted (empty array -> zeros); any other length mismatch or a non-finite value is an error.
    """
    names = list(msg.name)
    if len(msg.position) != len(names):
        raise ValueError(f'JointState has {len(names)} names but {len(msg.position)} positions')
    if len(msg.velocity) not in (0, len(names)):
        raise ValueError(f'JointState has {len(names)} names but {len(msg.velocity)} velocities')
    index = {name: i for i, name in enumerate(names)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise ValueError(f'JointState is missing joint(s) {missing}; it has {names}')
    order = [index[name] for name in joint_names]
    q = np.asarray(msg.position, dtype=float)[order]
    qd = np.asarray(msg.velocity, dtype=float)[order] if len(msg.velocity) else np.zeros(len(order))
    for label, values in (('position', q), ('velocity', qd)):
        bad = [joint_names[i] for i in np.flatnonzero(~np.isfinite(values))]
        if bad:
            raise ValueError(f'JointState has non-finite {label} for joint(s) {bad}')
    return q, qd


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
