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



class LinkGeometry:
    """Every moving link's URDF collision geometry as points with radii, for the safety filter's table and
    link-box checks, and a bound on how far any of it can move for a joint motion.

    The shapes come from the URDF's <collision> elements through pinocchio's geometry model (coal shapes): a box
    is its 8 corners (exact: a box's extreme point along any axis is a corner), a cylinder its two axis end points
    with the rim's extent along each base axis (exact), a capsule or a sphere its end points or centre with the radius,
    any other shape (a mesh) the 8 corners of its local bounding box. Geometry fixed to the base cannot move and is
    skipped. One call runs one forward-kinematics pass and also returns the tool position.
    """

    def __init__(self, kinematics: Kinematics):
        model, profile = kinematics.model, kinematics.profile
        self._kin = kinematics
        geometry = pin.buildGeomFromUrdf(model, str(profile.urdf_path), pin.COLLISION)
        corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], dtype=np.float64)
        names, points, radii, joints, owner, cylinders = [], [], [], [], [], []
        for obj in geometry.geometryObjects:
            if obj.parentJoint == 0:
                continue
            shape, kind = obj.geometry, type(obj.geometry).__name__
            if kind == 'Box':
                local, radius = corners * np.asarray(shape.halfSide), 0.0
            elif kind in ('Cylinder', 'Capsule'):
                local, radius = np.array([[0, 0, -shape.halfLength], [0, 0, shape.halfLength]]), float(shape.radius)
                if kind == 'Cylinder':  # the rim: extent r * sqrt(1 - a_k^2) along base axis k, a the world axis
                    start = len(owner)
                    cylinders.append((start, start + 1, 2.0 * float(shape.halfLength), radius))
                    radius = 0.0
            elif kind == 'Sphere':
                local, radius = np.zeros((1, 3)), float(shape.radius)
            else:
                shape.computeLocalAABB()
                lo, hi = np.asarray(shape.aabb_local.min_), np.asarray(shape.aabb_local.max_)
                local, radius = 0.5 * (hi + lo) + corners * 0.5 * (hi - lo), 0.0
            placed = np.array([obj.placement.act(np.asarray(p, dtype=np.float64)) for p in local])
            owner += [len(names)] * len(placed)
            names.append(obj.name)
            points.append(placed)
            radii += [radius] * len(placed)
            joints += [obj.parentJoint] * len(placed)
        if not names:
            raise ProfileError(f'{profile.urdf_path}: no <collision> geometry on a moving link')
        self.names = tuple(names)
        self._joints = sorted(set(joints))
        index = {j: i for i, j in enumerate(self._joints)}
        self._parent = np.array([index[j] for j in joints])
        local = np.concatenate(points)
        self._points = np.concatenate([local, np.ones((len(local), 1))], axis=1)  # (k, 4) homogeneous
        self._radius = np.array(radii)[:, None]                                   # (k, 1)
        self.owner = np.array(owner)  # point -> index into names
        self._cyl = np.array([c[:2] for c in cylinders], dtype=int).reshape(-1, 2)
        self._cyl_length = np.array([c[2] for c in cylinders])[:, None]
        self._cyl_radius = np.array([c[3] for c in cylinders])[:, None]
        self._cyl_points = self._cyl.reshape(-1)
        # Block matrix: the world coordinates of every point are one product H_rows (a, 4 * joints) @ B (4 j, k);
        # D gives the cylinder axes' world components, E spreads each cylinder's rim extent to its two points.
        k = len(owner)
        B = np.zeros((4 * len(self._joints), k))
        for i, j in enumerate(self._parent):
            B[4 * j:4 * j + 4, i] = self._points[i]
        self._block = B
        self._axis_block = (B[:, self._cyl[:, 1]] - B[:, self._cyl[:, 0]]) / self._cyl_length[:, 0]
        E = np.zeros((len(self._cyl), k))
        E[np.arange(len(self._cyl)), self._cyl[:, 0]] = 1.0
        E[np.arange(len(self._cyl)), self._cyl[:, 1]] = 1.0
        self._spread = E * self._cyl_radius
        self._base_extent = self._radius[:, 0]
        # reach[i]: no geometry point lies farther than this from the axis of profile joint i, in any configuration
        # (triangle inequality along the chain), so a joint motion dq moves no point more than reach @ |dq|.
        parent = list(model.parents)
        offset = [float(np.linalg.norm(model.jointPlacements[j].translation)) for j in range(model.njoints)]
        reach = np.zeros(model.njoints)
        for p, j, r in zip(local, joints, radii):
            distance, k = float(np.linalg.norm(p)) + max([r] + [c[3] for c in cylinders]), j
            while k > 0:  # walk to the root: every joint above moves this point
                reach[k] = max(reach[k], distance)
                distance += offset[k]
                k = parent[k]
        by_name = {model.names[j]: reach[j] for j in range(1, model.njoints)}
        self.reach = np.array([by_name[name] for name in profile.joint_names])

    def __call__(self, q, axes=(0, 1, 2)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tool position (3,), lower (k, a) and upper (k, a) extents of the geometry points along the base `axes`)."""
        kin = self._kin
        tool = kin._placement(q).translation.copy()
        oMi = kin.data.oMi
        H = np.array([oMi[j].homogeneous for j in self._joints])  # (joints, 4, 4)
        rows = H[:, list(axes), :].transpose(1, 0, 2).reshape(len(axes), -1)  # (a, 4 * joints)
        world = rows @ self._block                                 # (a, k)
        axis = rows @ self._axis_block                             # (a, cylinders): world axis components
        extent = self._base_extent + np.sqrt(np.maximum(0.0, 1.0 - axis * axis)) @ self._spread
        return tool, (world - extent).T, (world + extent).T
