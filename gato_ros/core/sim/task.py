"""Block-stacking task geometry: block colours, spawn sampling, cube yaw, and the "A rests on B" test.

Pure functions on poses, so the success rule is tested without a simulator.
"""

import math
from dataclasses import dataclass

import numpy as np

BLOCK_COLORS = {  # name -> RGBA
    'red': (0.85, 0.12, 0.12, 1.0),
    'green': (0.15, 0.7, 0.2, 1.0),
    'blue': (0.15, 0.3, 0.9, 1.0),
}
LEVEL_TOLERANCE = math.radians(10)  # a block counts as level when one of its axes is this close to vertical
HEIGHT_TOLERANCE = 0.01             # |bottom of A - top of B| (m)
REST_SPEED = 0.05                   # m/s; faster than this is not resting


@dataclass(frozen=True)
class TaskStatus:
    success: bool       # A rested on B, released, for the hold time (latched for the episode)
    stacked: bool       # A rests on B, released, right now
    stacked_for: float  # seconds the current stack has lasted
    failed: bool        # a block left the table: the episode cannot succeed any more
    reason: str         # why not stacked (empty when stacked)


def sample_block_xy(rng: np.random.Generator, count: int, x_range, y_range, min_distance: float,
                    max_tries: int = 10000) -> np.ndarray:
    """(count, 2) positions uniform in the box with pairwise distance >= min_distance (rejection sampling)."""
    points = []
    for _ in range(max_tries):
        candidate = np.array([rng.uniform(*x_range), rng.uniform(*y_range)])
        if all(np.linalg.norm(candidate - p) >= min_distance for p in points):
            points.append(candidate)
            if len(points) == count:
                return np.array(points)
    raise ValueError(f'cannot place {count} blocks {min_distance} m apart in x {x_range}, y {y_range}')


def wrap_quarter(angle: float) -> float:
    """Angle wrapped to [-pi/4, pi/4): a cube looks the same every quarter turn."""
    return (angle + math.pi / 4) % (math.pi / 2) - math.pi / 4


def quat_to_matrix(quat) -> np.ndarray:
    """Rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = quat
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


def cube_yaw(quat) -> float:
    """Yaw of a cube's side faces in [-pi/4, pi/4): heading of its most horizontal axis, modulo a quarter turn."""
    rotation = quat_to_matrix(quat)
    axis = rotation[:, int(np.argmin(np.abs(rotation[2])))]
    return wrap_quarter(math.atan2(axis[1], axis[0]))


def is_level(quat, tolerance: float = LEVEL_TOLERANCE) -> bool:
    """True when one of the cube's axes is within `tolerance` of vertical (it sits flat on a face)."""
    return float(np.max(np.abs(quat_to_matrix(quat)[2]))) >= math.cos(tolerance)


def stack_reason(pos_a, quat_a, speed_a: float, pos_b, quat_b, block_size: float, a_touches_robot: bool) -> str:
    """Empty string when block A rests level on top of block B and the gripper has let go; else why not."""
    offset = np.asarray(pos_a) - np.asarray(pos_b)
    if np.hypot(offset[0], offset[1]) > block_size / 2:
        return 'A is not above B'
    if abs(offset[2] - block_size) > HEIGHT_TOLERANCE:
        return 'A bottom is not on B top'
    if not (is_level(quat_a) and is_level(quat_b)):
        return 'A or B is not level'
    if speed_a > REST_SPEED:
        return 'A is moving'
    if a_touches_robot:
        return 'A is still held'
    return ''
