"""Camera images and joint states from sensor_msgs-shaped messages, duck-typed: the same functions read rclpy
messages (policy_node, safety_controller_node) and the ones `rosbags` decodes from a bag (gato-ros import-bag).
Every error names the problem."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# encoding -> (channels, cv2 conversion to RGB or None when already RGB)
_ENCODINGS = {
    'rgb8': (3, None),
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
}
COMPRESSED_FORMATS = ('jpeg', 'jpg', 'png')


def _resize(rgb: np.ndarray, size: int) -> np.ndarray:
    if rgb.shape[:2] != (size, size):
        # INTER_AREA averages source pixels: no aliasing when shrinking camera frames to model size.
        rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def image_to_rgb(msg, size: int) -> np.ndarray:
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


def compressed_to_rgb(msg, size: int) -> np.ndarray:
    """sensor_msgs/CompressedImage (jpeg or png, image_transport's format string) -> (size, size, 3) uint8."""
    fmt = msg.format.lower()
    if not any(name in fmt for name in COMPRESSED_FORMATS):
        raise ValueError(f'unsupported compressed image format {msg.format!r}; expected jpeg or png')
    bgr = cv2.imdecode(np.frombuffer(msg.data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'could not decode {len(msg.data)} bytes of {msg.format!r} compressed image data')
    return _resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size)


def camera_to_rgb(msg, size: int) -> np.ndarray:
    """Image or CompressedImage (the one with a `format` field) -> (size, size, 3) uint8 RGB."""
    return compressed_to_rgb(msg, size) if hasattr(msg, 'format') else image_to_rgb(msg, size)


def joint_state_to_arrays(msg, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
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
