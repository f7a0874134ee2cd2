"""Kinematics (pinocchio on the URDF) against independent closed forms, finite differences and the profiles."""

import dataclasses
import math
import time

import numpy as np
import pytest
import transforms3d as t3d

from gato_ros.core.robots import Kinematics, ProfileError, load_profile, tool_yaw

GRIPPER_LENGTH = 0.10  # flange -> fingertip centre: palm 0.04 m + fingers 0.06 m


def _transform(xyz=(0, 0, 0), rotation=np.eye(3)):
    T = np.eye(4)
    T[:3, :3], T[:3, 3] = rotation, xyz
    return T


def _rz(angle):
    return t3d.axangles.axangle2mat([0, 0, 1], angle)


def ur5e_dh(q):
    """Standard UR DH forward kinematics, controller base -> tool0 (flange, z out)."""
    d = [0.1625, 0, 0, 0.1333, 0.0997, 0.0996]
    a = [0, -0.425, -0.3922, 0, 0, 0]
    alpha = [math.pi / 2, 0, 0, math.pi / 2, -math.pi / 2, 0]
    T = np.eye(4)
    for i in range(6):
        ct, st, ca, sa = math.cos(q[i]), math.sin(q[i]), math.cos(alpha[i]), math.sin(alpha[i])
        T = T @ np.array([[ct, -st * ca, st * sa, a[i] * ct], [st, ct * ca, -ct * sa, a[i] * st],
                          [0, sa, ca, d[i]], [0, 0, 0, 1]])
    return T


# Sawyer joint origins (xyz, rpy) as published in sawyer_description, typed in independently of our URDF.
SAWYER_ORIGINS = [((0, 0, 0.08), (0, 0, 0)), ((0.081, 0.05, 0.237), (-math.pi / 2, math.pi / 2, 0)),
                  ((0, -0.14, 0.1425), (math.pi / 2, 0, 0)), ((0, -0.042, 0.26), (-math.pi / 2, 0, 0)),
                  ((0, -0.125, -0.1265), (math.pi / 2, 0, 0)), ((0, 0.031, 0.275), (-math.pi / 2, 0, 0)),
                  ((0, -0.11, 0.1053), (-math.pi / 2, -0.17453, 3.1416))]


def sawyer_tool(q):
    """Chain the published origins to right_hand, then our gripper: mounted yawed by pi, tool 0.10 m out."""
    T = np.eye(4)
    for (xyz, rpy), angle in zip(SAWYER_ORIGINS, q):
        T = T @ _transform(xyz, t3d.euler.euler2mat(*rpy, 'sxyz')) @ _transform(rotation=_rz(angle))
    T = T @ _transform((0, 0, 0.0245), _rz(math.pi / 2))  # right_l6 -> right_hand
    return T @ _transform(rotation=_rz(math.pi)) @ _transform((0, 0, GRIPPER_LENGTH))


def _small_rotation(R):
    """Rotation vector of a near-identity rotation (first order, from its skew-symmetric part)."""
    return np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]]) / 2


def _rotation_error(A, B):
    """Angle (rad) between two rotations, accurate for the small angles we assert on."""
    relative = A.T @ B
    assert np.trace(relative) > 1.0  # closer than 90 degrees, so the skew part gives the angle
    return float(np.linalg.norm(_small_rotation(relative)))


@pytest.fixture(scope='module')
def kins():
    return {robot: Kinematics(load_profile(robot)) for robot in ('ur5e', 'sawyer')}


def test_ur5e_matches_dh_closed_form(kins):
    kin = kins['ur5e']
    # ur_description's base_link is the controller base turned by pi about z; the tool is 0.10 m out of tool0.
    base_link_from_base = _transform(rotation=_rz(math.pi))
    rng = np.random.default_rng(1)
    for q in rng.uniform(kin.profile.lower, kin.profile.upper, size=(1000, 6)):
        expected = base_link_from_base @ ur5e_dh(q) @ _transform((0, 0, GRIPPER_LENGTH))
        position, rotation = kin.tool_pose(q)
        assert np.abs(position - expected[:3, 3]).max() <= 1e-6
        assert _rotation_error(rotation, expected[:3, :3]) <= 1e-6


def test_sawyer_matches_published_chain(kins):
    kin = kins['sawyer']
    neutral = kin.profile.home
    position, rotation = kin.tool_pose(neutral)
    expected = sawyer_tool(neutral)
    np.testing.assert_allclose(position, expected[:3, 3], atol=1e-6)
    assert _rotation_error(rotation, expected[:3, :3]) <= 1e-6
    for q in np.random.default_rng(2).uniform(kin.profile.lower, kin.profile.upper, size=(50, 7)):
        np.testing.assert_allclose(kin.tool_position(q), sawyer_tool(q)[:3, 3], atol=1e-6)


@pytest.mark.parametrize('robot', ['ur5e', 'sawyer'])
def test_jacobian_matches_finite_differences(kins, robot):
    kin = kins[robot]
    h = 1e-6
    for q in np.random.default_rng(3).uniform(kin.profile.lower, kin.profile.upper, size=(5, kin.n)):
        p0, R0 = kin.tool_pose(q)
        numeric = np.empty((6, kin.n))
        for i in range(kin.n):
            p1, R1 = kin.tool_pose(q + h * np.eye(kin.n)[i])
            numeric[:, i] = np.concatenate([(p1 - p0) / h, _small_rotation(R1 @ R0.T) / h])
        np.testing.assert_allclose(kin.jacobian(q), numeric, atol=1e-5)


def test_joint_order_is_mapped_by_name(kins):
    kin = kins['ur5e']
    p = kin.profile
    order = [3, 0, 5, 1, 4, 2]
    permuted = dataclasses.replace(
        p, joint_names=tuple(p.joint_names[i] for i in order),
        **{f: getattr(p, f)[order] for f in ('lower', 'upper', 'velocity', 'acceleration', 'home', 'ready')})
    shuffled = Kinematics(permuted)
    q = np.random.default_rng(4).uniform(-2, 2, 6)
    np.testing.assert_allclose(shuffled.tool_position(q[order]), kin.tool_position(q), atol=1e-12)
    np.testing.assert_allclose(shuffled.jacobian(q[order]), kin.jacobian(q)[:, order], atol=1e-12)


@pytest.mark.parametrize('robot', ['ur5e', 'sawyer'])
def test_ready_pose_is_above_the_table_centre_pointing_down(kins, robot):
    kin = kins[robot]
    position, rotation = kin.tool_pose(kin.profile.ready)
    np.testing.assert_allclose(position[:2], [0.5, 0.0], atol=1e-3)
    assert 0.25 <= position[2] <= 0.30
    np.testing.assert_allclose(rotation[:, 2], [0, 0, -1], atol=1e-3)
    assert abs(tool_yaw(rotation)) < 1e-3
    assert (position > kin.profile.workspace_min).all() and (position < kin.profile.workspace_max).all()


def test_bad_inputs(kins):
    with pytest.raises(ValueError, match=r'q has shape \(5,\)'):
        kins['ur5e'].tool_position(np.zeros(5))
    with pytest.raises(ProfileError, match="tool_frame 'gripper_tip'"):
        Kinematics(dataclasses.replace(kins['ur5e'].profile, tool_frame='gripper_tip'))


def test_tool_position_is_fast_enough_for_500hz(kins):
    kin = kins['ur5e']
    q = kin.profile.ready
    kin.tool_position(q)
    start = time.perf_counter()
    for _ in range(2000):
        kin.tool_position(q)
    per_call = (time.perf_counter() - start) / 2000
    assert per_call < 50e-6, f'tool_position took {per_call * 1e6:.1f} us'
