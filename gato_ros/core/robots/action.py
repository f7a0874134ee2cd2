"""The policy's action space: a Cartesian tool velocity with the gripper kept pointing down.

action = [vx, vy, vz, yaw_rate, grip], each in [-1, 1] (clipped): linear velocity in the base frame scaled by
max_linear_speed, yaw rate about world z scaled by max_yaw_rate, and grip > 0 closes the gripper (bang-bang).
The same mapping drives the scripted expert, the learned policy, the sim and the ROS nodes, so a dataset recorded
in one place means the same motion everywhere.
"""

import math
from dataclasses import dataclass

import numpy as np

from gato_ros.core.robots.kinematics import Kinematics
from gato_ros.core.safety.proposal import Proposal

ACTION_DIM = 5
GRIP_HYSTERESIS = 0.5   # GripLatch band: a learned policy's grip changes side only past +-0.5
_DOWN = np.array([0.0, 0.0, -1.0])


class GripLatch:
    """The gripper decision of a learned policy, with hysteresis.

    A policy decoding the expected value of its grip bins hovers near 0 where it is unsure (fingers half closed,
    the block just lifted), and a bang-bang gripper turns every sign change into a release: closed-loop rollouts
    closed 12-23 times per episode where the expert closes once, and dropped the block. The latch closes only
    when grip > band, opens only when grip < -band, and otherwise keeps its side; it outputs +-1.
    band 0 passes the grip through unchanged (e.g. to measure the model itself).
    """

    def __init__(self, band: float = GRIP_HYSTERESIS):
        if not (isinstance(band, (int, float)) and 0.0 <= band < 1.0):
            raise ValueError(f'grip hysteresis band must be in [0, 1), got {band!r}')
        self.band = float(band)
        self.reset()

    def reset(self) -> None:
        self.closed = False     # every episode starts with the gripper open

    def __call__(self, grip: float) -> float:
        if self.band == 0.0:
            return grip
        if grip > self.band:
            self.closed = True
        elif grip < -self.band:
            self.closed = False
        return 1.0 if self.closed else -1.0


@dataclass(frozen=True)
class CartesianActionSpace:
    max_linear_speed: float = 0.15  # tool speed (m/s) per axis at |a| = 1
    max_yaw_rate: float = 1.0       # yaw rate (rad/s) about world z at |a| = 1
    orientation_gain: float = 2.0   # 1/s: roll/pitch error -> angular velocity that turns the tool back down
    damping: float = 0.05           # max damping of the least-squares solve, applied only near singularities
    singular_threshold: float = 0.05  # singular value below which damping ramps in (Nakamura & Hanafusa)

    def __post_init__(self):
        for field in ('max_linear_speed', 'max_yaw_rate', 'orientation_gain', 'damping', 'singular_threshold'):
            value = getattr(self, field)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f'CartesianActionSpace.{field} must be a finite number > 0, got {value!r}')

    def twist(self, rotation: np.ndarray, action) -> np.ndarray:
        """(6,) commanded tool twist [v; w] (base frame) for the tool's current rotation."""
        a = _action(action)
        # cross(z_tool, down) turns z_tool towards down; its world-z component is zero, so yaw stays free.
        hold = self.orientation_gain * np.cross(rotation[:, 2], _DOWN)
        return np.concatenate([a[:3] * self.max_linear_speed, hold[:2], [a[3] * self.max_yaw_rate]])

    def joint_velocity(self, kin: Kinematics, q, action) -> np.ndarray:
        """(n,) joint velocity realising the action: damped least squares, scaled into the velocity limits."""
        q = _finite(q, 'q')
        _, rotation = kin.tool_pose(q)
        U, s, Vt = np.linalg.svd(kin.jacobian(q), full_matrices=False)
        ramp = np.clip(1.0 - (s / self.singular_threshold) ** 2, 0.0, 1.0)
        gains = s / (s ** 2 + ramp * self.damping ** 2)
        qd = Vt.T @ (gains * (U.T @ self.twist(rotation, action)))
        # Scale all joints together so the tool keeps its direction when a joint would exceed its limit.
        return qd / max(1.0, float(np.max(np.abs(qd) / kin.profile.velocity)))

    def proposal(self, kin: Kinematics, q, action, now: float, horizon: float, n_points: int,
                 stamp: float | None = None) -> Proposal:
        """The Proposal realising the action over [now, now + horizon]: times (k,), positions (k, n).

        The first point is (now, q), so the trajectory starts where the arm is; the rest integrate
        joint_velocity, re-linearised at every point, with k = n_points evenly spaced times. `stamp` is when
        the observation behind it was made (default now): the safety filter judges the proposal's age by it.
        """
        if not (math.isfinite(now) and math.isfinite(horizon) and horizon > 0):
            raise ValueError(f'proposal needs finite now and horizon > 0, got now={now}, horizon={horizon}')
        if n_points < 2:
            raise ValueError(f'proposal needs n_points >= 2, got {n_points}')
        times = now + np.linspace(0.0, horizon, n_points)
        positions = np.empty((n_points, kin.n))
        positions[0] = _finite(q, 'q')
        dt = horizon / (n_points - 1)
        for i in range(1, n_points):
            positions[i] = positions[i - 1] + dt * self.joint_velocity(kin, positions[i - 1], action)
        return Proposal(stamp=now if stamp is None else stamp, times=times, positions=positions)

    def gripper_command(self, action) -> float:
        """1.0 (close) if grip > 0, else 0.0 (open)."""
        return 1.0 if _action(action)[4] > 0 else 0.0


def _finite(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f'{name} must be finite, got {x.tolist()}')
    return x


def _action(action) -> np.ndarray:
    a = _finite(action, 'action')
    if a.shape != (ACTION_DIM,):
        raise ValueError(f'action must have shape ({ACTION_DIM},) [vx, vy, vz, yaw_rate, grip], got {a.shape}')
    return np.clip(a, -1.0, 1.0)
