"""The URDFs: primitive geometry, docs/design.md §4 limits, plausible inertias, and MuJoCo agrees with pinocchio."""

import math
import xml.etree.ElementTree as ET

import mujoco
import numpy as np
import pytest

from gato_ros.core.robots import Kinematics, load_profile
from gato_ros.resources import resource_path

TWO_PI = 2 * math.pi
# docs/design.md §4, typed in independently of the URDFs: joint -> (lower, upper, velocity, effort or None).
DESIGN_LIMITS = {
    'ur5e': {'shoulder_pan_joint': (-TWO_PI, TWO_PI, math.pi, 150),
             'shoulder_lift_joint': (-TWO_PI, TWO_PI, math.pi, 150),
             'elbow_joint': (-math.pi, math.pi, math.pi, 150), 'wrist_1_joint': (-TWO_PI, TWO_PI, math.pi, 28),
             'wrist_2_joint': (-TWO_PI, TWO_PI, math.pi, 28), 'wrist_3_joint': (-TWO_PI, TWO_PI, math.pi, 28)},
    'sawyer': {'right_j0': (-3.0503, 3.0503, 1.74, None), 'right_j1': (-3.8095, 2.2736, 1.328, None),
               'right_j2': (-3.0426, 3.0426, 1.957, None), 'right_j3': (-3.0439, 3.0439, 1.957, None),
               'right_j4': (-2.9761, 2.9761, 3.485, None), 'right_j5': (-2.9761, 2.9761, 3.485, None),
               'right_j6': (-4.7124, 4.7124, 4.545, None)},
}
ROBOTS = sorted(DESIGN_LIMITS)


def _root(robot):
    return ET.parse(resource_path('urdf', f'{robot}.urdf')).getroot()


def _mujoco(robot):
    return mujoco.MjModel.from_xml_path(str(resource_path('urdf', f'{robot}.urdf')))


def _set(model, data, names, values):
    for name, value in zip(names, values):
        data.qpos[model.jnt_qposadr[model.joint(name).id]] = value


@pytest.mark.parametrize('robot', ROBOTS)
def test_urdf_limits_match_design(robot):
    joints = {j.get('name'): j for j in _root(robot).iter('joint')}
    for name, (lower, upper, velocity, effort) in DESIGN_LIMITS[robot].items():
        limit = joints[name].find('limit')
        assert joints[name].get('type') == 'revolute'
        assert float(limit.get('lower')) == pytest.approx(lower, abs=1e-9)
        assert float(limit.get('upper')) == pytest.approx(upper, abs=1e-9)
        assert float(limit.get('velocity')) == pytest.approx(velocity, abs=1e-9)
        if effort is not None:
            assert float(limit.get('effort')) == effort


@pytest.mark.parametrize('robot', ROBOTS)
def test_primitive_geometry_and_plausible_inertia(robot):
    root = _root(robot)
    assert not list(root.iter('mesh'))
    for link in root.iter('link'):
        if link.find('collision') is None:
            continue
        inertial = link.find('inertial')
        assert inertial is not None, link.get('name')
        mass = float(inertial.find('mass').get('value'))
        assert 0.01 < mass < 20, link.get('name')
        a = {k: float(v) for k, v in inertial.find('inertia').attrib.items()}
        inertia = np.array([[a['ixx'], a['ixy'], a['ixz']], [a['ixy'], a['iyy'], a['iyz']],
                            [a['ixz'], a['iyz'], a['izz']]])
        principal = np.linalg.eigvalsh(inertia)
        assert principal.min() > 0, link.get('name')
        assert principal.max() <= principal.sum() - principal.max() + 1e-12, link.get('name')  # triangle inequality


@pytest.mark.parametrize('robot', ROBOTS)
def test_mujoco_loads_with_design_ranges_and_gripper(robot):
    model = _mujoco(robot)
    for name, (lower, upper, _, _) in DESIGN_LIMITS[robot].items():
        np.testing.assert_allclose(model.jnt_range[model.joint(name).id], [lower, upper], atol=1e-9)
    profile = load_profile(robot)
    for finger in profile.gripper_joint_names:
        joint = model.joint(finger)
        assert model.jnt_type[joint.id] == mujoco.mjtJoint.mjJNT_SLIDE
        np.testing.assert_allclose(model.jnt_range[joint.id], [0.0, 0.04])
    assert model.nq == len(profile.joint_names) + 2


@pytest.mark.parametrize('robot', ROBOTS)
def test_mujoco_tool_matches_pinocchio(robot):
    profile = load_profile(robot)
    kin = Kinematics(profile)
    model = _mujoco(robot)
    data = mujoco.MjData(model)
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = rng.uniform(profile.lower, profile.upper)
        _set(model, data, profile.joint_names, q)
        mujoco.mj_kinematics(model, data)
        position, rotation = kin.tool_pose(q)
        np.testing.assert_allclose(data.xpos[model.body('tool').id], position, atol=1e-9)
        np.testing.assert_allclose(data.xmat[model.body('tool').id].reshape(3, 3), rotation, atol=1e-9)


@pytest.mark.parametrize('robot', ROBOTS)
@pytest.mark.parametrize('pose', ['home', 'ready'])
def test_no_self_contact_and_open_gripper_fits_a_cube(robot, pose):
    profile = load_profile(robot)
    model = _mujoco(robot)
    data = mujoco.MjData(model)
    _set(model, data, profile.joint_names, getattr(profile, pose))
    _set(model, data, profile.gripper_joint_names, [0.04, 0.04])
    mujoco.mj_forward(model, data)
    assert data.ncon == 0, [(model.body(model.geom_bodyid[c.geom1]).name,
                             model.body(model.geom_bodyid[c.geom2]).name) for c in data.contact[:data.ncon]]
    # The tool point sits centred between the fingertips, and the open fingers leave room for a 5 cm cube.
    tool = model.body('tool').id
    R, p = data.xmat[tool].reshape(3, 3), data.xpos[tool]
    inner, tips = [], []
    for side in ('left', 'right'):
        geom = int(np.flatnonzero(model.geom_bodyid == model.body(f'finger_{side}_link').id)[0])
        local = R.T @ (data.geom_xpos[geom] - p)
        half = model.geom_size[geom]
        tips.append(local[2] + half[2])
        inner.append(abs(local[1]) - half[1])
        assert local[2] - half[2] < -0.045  # fingers reach 4.5 cm up from the tool point at least
    np.testing.assert_allclose(tips, 0.0, atol=1e-9)
    assert min(inner) * 2 > 0.06
