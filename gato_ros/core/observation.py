"""The ONE place that turns robot data into the Gato observation dict (recording, training and the policy
all call build_observation, so what the model is trained on is what it sees on the robot).

Keys (tokenized in lexicographic order, DESIGN.md §3): 'image_<camera>' uint8 (H, W, 3) per camera,
'proprio_joints' float32 (n,) arm joint positions (rad, controller order), 'proprio_tool' float32 (6,)
[x, y, z, sin yaw, cos yaw, gripper] (tool point in the base frame, m; gripper 0 = open .. 1 = closed).
Yaw enters as sin/cos so the +-pi wrap is not a jump.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np


def _finite(name: str, value, shape: tuple | None = None) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f'observation {name}: expected numbers, got {type(value).__name__}') from None
    if shape is not None and arr.shape != shape:
        raise ValueError(f'observation {name}: expected shape {shape}, got {arr.shape}')
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f'observation {name}: non-finite value {arr[bad].ravel()[0]} at index '
                         f'{int(np.flatnonzero(bad.ravel())[0])}')
    return arr


def gripper_closure(finger_q, closed, opened) -> np.ndarray:
    """Finger joint positions (..., k) -> gripper closure (...,) 0 open .. 1 closed: the mean finger travel
    between the URDF's open and closed limits. The simulator, recording and policy_node all measure it so."""
    closed, opened = np.asarray(closed, dtype=np.float64), np.asarray(opened, dtype=np.float64)
    travel = (opened - np.asarray(finger_q, dtype=np.float64)) / (opened - closed)
    return np.clip(travel.mean(axis=-1), 0.0, 1.0)


def build_observation(images: Mapping[str, np.ndarray], q, gripper: float, tool_pos, tool_yaw: float) -> dict:
    """Camera name -> uint8 (H, W, 3) RGB image, joint positions q (n,), gripper in [0, 1] (0 = open),
    tool position (3,) and yaw (rad) -> the observation dict. Raises ValueError naming the bad field."""
    obs = {}
    for camera, image in images.items():
        if not isinstance(camera, str) or not camera:
            raise ValueError(f'observation images: camera names must be non-empty strings, got {camera!r}')
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'observation image_{camera}: expected uint8 (H, W, 3) RGB, '
                             f'got {image.dtype} {image.shape}')
        obs[f'image_{camera}'] = image
    q = _finite('proprio_joints (q)', q)
    if q.ndim != 1 or q.size == 0:
        raise ValueError(f'observation proprio_joints (q): expected a non-empty 1-D array, got shape {q.shape}')
    gripper = float(_finite('gripper', gripper, ()))
    x, y, z = _finite('tool_pos', tool_pos, (3,))
    yaw = float(_finite('tool_yaw', tool_yaw, ()))
    obs['proprio_joints'] = q.astype(np.float32)
    obs['proprio_tool'] = np.array([x, y, z, math.sin(yaw), math.cos(yaw), gripper], dtype=np.float32)
    return obs
