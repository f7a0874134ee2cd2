"""Robot profiles: URDF limits flow in, YAML may only tighten them, and every bad field is named."""

import math

import numpy as np
import pytest
import yaml

from gato_ros.core.robots import ProfileError, load_profile
from gato_ros.core.robots.profile import urdf_limits
from gato_ros.resources import resource_path

ROBOTS = ['ur5e', 'sawyer']


def _raw(robot):
    raw = yaml.safe_load(resource_path('config', 'robots', f'{robot}.yaml').read_text())
    raw['urdf'] = str(resource_path('urdf', raw['urdf']))
    return raw


def _load(tmp_path, raw):
    path = tmp_path / 'profile.yaml'
    path.write_text(yaml.safe_dump(raw))
    return load_profile(str(path))


@pytest.mark.parametrize('robot', ROBOTS)
def test_limits_come_from_the_urdf(robot):
    profile = load_profile(robot)
    limits = urdf_limits(profile.urdf_path, profile.joint_names)
    np.testing.assert_array_equal(profile.lower, [limits[j][0] for j in profile.joint_names])
    np.testing.assert_array_equal(profile.upper, [limits[j][1] for j in profile.joint_names])
    np.testing.assert_array_equal(profile.velocity, [limits[j][2] for j in profile.joint_names])


def test_ur5e_profile_values():
    p = load_profile('ur5e')
    assert p.joint_names == ('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint', 'wrist_1_joint',
                             'wrist_2_joint', 'wrist_3_joint')
    np.testing.assert_allclose(p.upper, [2 * math.pi] * 2 + [math.pi] + [2 * math.pi] * 3)
    np.testing.assert_allclose(p.velocity, math.pi)
    np.testing.assert_array_equal(p.acceleration, 5.0)
    np.testing.assert_array_equal(p.home, [0, -1.57, 0, -1.57, 0, 0])
    assert (p.margin, p.command_interface, p.tool_frame) == (0.1, 'forward_position', 'tool')
    assert p.command_topic == '/forward_position_controller/commands'
    assert p.gripper_topic == '/gripper_controller/commands'
    assert p.trajectory_topic == '/scaled_joint_trajectory_controller/joint_trajectory'   # the UR driver's


def test_sawyer_profile_values():
    p = load_profile('sawyer')
    assert p.joint_names == tuple(f'right_j{i}' for i in range(7))
    assert p.trajectory_topic == '/joint_trajectory_controller/joint_trajectory'
    np.testing.assert_allclose(p.lower[1], -3.8095)
    np.testing.assert_array_equal(p.acceleration, 8.0)
    np.testing.assert_array_equal(p.home, [0, -1.18, 0, 2.18, 0, 0.57, 3.3161])


def test_command_topic_per_interface(tmp_path):
    ur5e = load_profile('ur5e')
    assert [ur5e.command_topic_for(i) for i in ('forward_position', 'forward_velocity', 'joint_trajectory')] == [
        '/forward_position_controller/commands', '/forward_velocity_controller/commands',
        '/scaled_joint_trajectory_controller/joint_trajectory']
    raw = _raw('ur5e')
    raw.pop('trajectory_topic')            # a profile of its own may leave it out: ros2_control's default name
    default = _load(tmp_path, raw).command_topic_for('joint_trajectory')
    assert default == '/joint_trajectory_controller/joint_trajectory'


@pytest.mark.parametrize('robot', ROBOTS)
def test_workspace_covers_the_task(robot):
    p = load_profile(robot)
    assert (p.workspace_min <= [0.40, -0.20, p.table_height]).all()
    assert (p.workspace_max >= [0.65, 0.20, 0.6]).all()
    assert p.table_height + p.table_clearance <= 0.02  # the tool can reach a 5 cm cube's middle
    assert (p.ready > p.lower + p.margin).all() and (p.ready < p.upper - p.margin).all()


@pytest.mark.parametrize('robot', ROBOTS)
def test_profile_arrays_are_read_only(robot):
    with pytest.raises(ValueError):
        load_profile(robot).lower[0] = 0.0


def test_tightening_is_applied(tmp_path):
    raw = _raw('ur5e')
    raw['limits'] = {'wrist_3_joint': {'lower': -3.0, 'upper': 3.0, 'velocity': 1.0}}
    p = _load(tmp_path, raw)
    assert (p.lower[5], p.upper[5], p.velocity[5]) == (-3.0, 3.0, 1.0)
    assert p.upper[4] == pytest.approx(2 * math.pi)


@pytest.mark.parametrize('key,value', [('lower', -7.0), ('upper', 6.5), ('velocity', 3.5)])
def test_loosening_is_rejected_naming_joint_and_value(tmp_path, key, value):
    raw = _raw('ur5e')
    raw['limits'] = {'wrist_2_joint': {key: value}}
    with pytest.raises(ProfileError, match=rf"wrist_2_joint.*{key} = {value}.*loosens"):
        _load(tmp_path, raw)


@pytest.mark.parametrize('change,pattern', [
    (lambda r: r.update(home=[0.0] * 5), 'home must have 6 values'),
    (lambda r: r.update(joint_names=r['joint_names'][:5] + ['no_such_joint']), "'no_such_joint'"),
    (lambda r: r.update(gripper_joint_names=['no_finger']), "'no_finger'"),
    (lambda r: r.update(margin=float('nan')), 'margin must be finite'),
    (lambda r: r.update(ready=[0.0, -1.57, 0.0, -1.57, 0.0, float('inf')]), 'ready must be finite'),
    (lambda r: r.update(ready=[0.0, -1.57, 3.1, -1.57, 0.0, 0.0]), r'ready\[2\] \(elbow_joint\) = 3.1 outside'),
    (lambda r: r.update(acceleration=[5.0, 5.0, 0.0, 5.0, 5.0, 5.0]), 'acceleration of elbow_joint must be > 0'),
    (lambda r: r.update(acceleration='fast'), 'acceleration must be a number'),
    (lambda r: r.update(workspace={'min': [0.8, -0.4, 0.0], 'max': [0.25, 0.4, 0.65]}), 'workspace min'),
    (lambda r: r.update(workspace={'min': [0.0, 0.0]}), 'workspace must be a mapping with keys min and max'),
    (lambda r: r.update(command_interface='torque'), 'command_interface must be one of'),
    (lambda r: r.update(command_topic='commands'), 'command_topic must be an absolute topic'),
    (lambda r: r.update(trajectory_topic='jtc'), "trajectory_topic must be an absolute topic name, got 'jtc'"),
    (lambda r: r.update(table_clearance=-0.01), r'table_clearance must be in \[0, 0.1\)'),
    (lambda r: r.update(colour='blue'), r"unknown fields \['colour'\]"),
    (lambda r: r.pop('tool_frame'), r"missing fields \['tool_frame'\]"),
    (lambda r: r.update(limits={'nope': {'upper': 1.0}}), "limits: unknown joint 'nope'"),
    (lambda r: r.update(limits={'elbow_joint': {'upper': 'x'}}), 'limits.elbow_joint.upper must be a number'),
    (lambda r: r.update(urdf='missing.urdf'), "urdf 'missing.urdf' not found"),
])
def test_invalid_fields_are_named(tmp_path, change, pattern):
    raw = _raw('ur5e')
    change(raw)
    with pytest.raises(ProfileError, match=pattern) as err:
        _load(tmp_path, raw)
    assert 'profile.yaml' in str(err.value)  # the file is named too


def test_unknown_robot_name():
    with pytest.raises(ProfileError, match="unknown robot 'kuka'"):
        load_profile('kuka')
