"""The ONE place that turns robot data into the Gato observation dict: policy_node, the evaluator, the dataset
and the simulator's gripper reading all go through Observer, so what the model is trained on is what it sees
on the robot.

Keys (tokenized in lexicographic order, docs/design.md §3): 'image_<camera>' uint8 (H, W, 3) per camera,
'proprio_joints' float32 (n,) arm joint positions (rad, controller order), 'proprio_tool' float32 (6,)
[x, y, z, sin yaw, cos yaw, gripper] (tool point in the base frame, m; gripper 0 = open .. 1 = closed).
Yaw enters as sin/cos so the +-pi wrap is not a jump.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache, cached_property

import numpy as np

from gato_ros.core.robots import Kinematics, RobotProfile, load_profile, tool_yaw
from gato_ros.core.robots.profile import finger_limits


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


class Observer:
    """A robot's measurements -> its observation: tool pose by forward kinematics of q (never a simulator's
    privileged state), gripper closure from the finger joints against the URDF's finger limits."""

    def __init__(self, profile: RobotProfile):
        self.profile = profile
        self.finger_closed, self.finger_open = finger_limits(profile)

    @cached_property
    def kinematics(self) -> Kinematics:
        # Built on first use: the simulator only reads the gripper and should not pay for the URDF model.
        return Kinematics(self.profile)

    def gripper(self, finger_q) -> np.ndarray:
        """Finger joint positions (..., k) -> closure (...,), 0 open .. 1 closed."""
        return gripper_closure(finger_q, self.finger_closed, self.finger_open)

    def proprio(self, q, finger_q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Whole episodes at once: q (T, n), finger_q (T, k) -> gripper (T,), tool position (T, 3), tool yaw (T,)."""
        poses = [self.kinematics.tool_pose(qt) for qt in np.asarray(q, dtype=np.float64)]
        return (self.gripper(finger_q), np.array([p for p, _ in poses]).reshape(-1, 3),
                np.array([tool_yaw(r) for _, r in poses]))

    def observe(self, images: Mapping[str, np.ndarray], q, finger_q, gripper: float | None = None) -> dict:
        """One step: camera images, q (n,) and finger_q (k,) -> the observation dict. `gripper` replaces the
        finger reading where a robot reports no finger joints (finger_q None)."""
        position, rotation = self.kinematics.tool_pose(q)
        closure = float(self.gripper(finger_q)) if gripper is None else gripper
        return build_observation(images, q, closure, position, tool_yaw(rotation))


@cache
def observer_for(robot: str) -> Observer:
    """The shared Observer of a robot profile name (its Kinematics is built once per process)."""
    return Observer(load_profile(robot))
