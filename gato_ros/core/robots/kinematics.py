"""Tool forward kinematics and Jacobian from the URDF, with pinocchio.

The URDF holds the arm and the gripper; the finger joints (and any other joint the profile does not list) are
locked, so the model's configuration is exactly the profile's arm joints. Pinocchio orders joints by the URDF
tree, the profile by the controller: we map by name, and skip the permutation when the orders agree because
tool_position runs in the 500 Hz safety loop.
"""

import math

import numpy as np
import pinocchio as pin

from gato_ros.core.robots.profile import ProfileError, RobotProfile


def tool_yaw(rotation: np.ndarray) -> float:
    """Heading of the tool x axis about world z (rad, in (-pi, pi]); the yaw the action space commands."""
    return math.atan2(rotation[1, 0], rotation[0, 0])


class Kinematics:
    """Forward kinematics of profile.tool_frame over profile.joint_names (in that order), base frame."""

    def __init__(self, profile: RobotProfile):
        full = pin.buildModelFromUrdf(str(profile.urdf_path))
        names = list(full.names)
        for joint in profile.joint_names:
            if joint not in names:
                raise ProfileError(f'{profile.urdf_path}: joint {joint!r} (joint_names) not in the URDF')
            if full.joints[full.getJointId(joint)].nq != 1:
                raise ProfileError(f'{profile.urdf_path}: joint {joint!r} is not a 1-DoF revolute/prismatic joint')
        locked = [full.getJointId(n) for n in names[1:] if n not in profile.joint_names]
        self.model = pin.buildReducedModel(full, locked, pin.neutral(full))
        self.data = self.model.createData()
        if not self.model.existFrame(profile.tool_frame):
            raise ProfileError(f'{profile.urdf_path}: tool_frame {profile.tool_frame!r} not in the URDF')
        self.frame_id = self.model.getFrameId(profile.tool_frame)
        self.profile = profile
        self.n = len(profile.joint_names)
        # perm[i] = profile index of pinocchio's i-th configuration entry.
        perm = np.array([profile.joint_names.index(self.model.names[j]) for j in range(1, self.model.njoints)])
        self._perm = None if np.array_equal(perm, np.arange(self.n)) else perm
        self._inv = None if self._perm is None else np.argsort(perm)

    def _q(self, q) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        if q.shape != (self.n,):
            raise ValueError(f'q has shape {q.shape}, expected ({self.n},) for joints {self.profile.joint_names}')
        return q if self._perm is None else q[self._perm]

    def _placement(self, q) -> pin.SE3:
        pin.forwardKinematics(self.model, self.data, self._q(q))
        return pin.updateFramePlacement(self.model, self.data, self.frame_id)

    def tool_pose(self, q) -> tuple[np.ndarray, np.ndarray]:
        """Tool position (3,) and rotation (3, 3) in the base frame."""
        placement = self._placement(q)
        return placement.translation.copy(), placement.rotation.copy()

    def tool_position(self, q) -> np.ndarray:
        """Tool position (3,) in the base frame."""
        return self._placement(q).translation.copy()

    def jacobian(self, q) -> np.ndarray:
        """(6, n) tool Jacobian [linear; angular], LOCAL_WORLD_ALIGNED, columns in profile joint order."""
        J = pin.computeFrameJacobian(self.model, self.data, self._q(q), self.frame_id, pin.LOCAL_WORLD_ALIGNED)
        return J if self._inv is None else J[:, self._inv]
