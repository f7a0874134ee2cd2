"""Parameters: declared with descriptors, YAML values reach the frozen configs, bad values fail at start-up."""

import dataclasses
from pathlib import Path

import pytest
import rclpy
import yaml
from rclpy.parameter import Parameter

from gato_ros.ros import params
from gato_ros.ros.params import ParamError, PolicyNodeConfig, SafetyNodeConfig

ROOT = Path(__file__).resolve().parents[1]


def make_node(context, name, overrides=(), params_file=None):
    args = ['--ros-args', '--params-file', str(params_file)] if params_file else None
    return rclpy.create_node(name, namespace='/gato', context=context, cli_args=args,
                             parameter_overrides=list(overrides))


@pytest.mark.parametrize('node_name, yaml_name, rate', [('policy_node', 'policy.yaml', 7.0),
                                                        ('safety_controller_node', 'safety_controller.yaml', 125.0)])
def test_packaged_yaml_reaches_the_config(context, tmp_path, node_name, yaml_name, rate):
    sections = yaml.safe_load((ROOT / 'config' / yaml_name).read_text())
    values = sections[f'/**/{node_name}']['ros__parameters']
    values['rate'] = rate  # a value that differs from the dataclass default
    changed = tmp_path / yaml_name
    changed.write_text(yaml.safe_dump(sections))
    node = make_node(context, node_name, params_file=changed)
    config = params.declare(node, params.NODE_CONFIGS[node_name])
    for key, value in values.items():
        got = getattr(config, key)
        assert (list(got) if isinstance(got, tuple) else got) == value, key
    described = node.describe_parameter('rate')
    assert described.description and described.read_only
    assert described.floating_point_range[0].from_value in (0.5, 10.0)
    node.destroy_node()


def test_out_of_range_value_names_parameter_and_range(context):
    node = make_node(context, 'safety_controller_node', [Parameter('rate', value=5000.0)])
    with pytest.raises(ParamError, match=r"safety_controller_node parameter 'rate'.*allowed range \[10.0, 1000.0\]"):
        params.declare(node, SafetyNodeConfig)
    node.destroy_node()


def test_wrong_type_names_parameter(context):
    node = make_node(context, 'policy_node', [Parameter('rate', value=10)])  # `rate: 10` in YAML is an integer
    with pytest.raises(ParamError, match=r"policy_node parameter 'rate' has the wrong type; expected float"):
        params.declare(node, PolicyNodeConfig)
    node.destroy_node()


@pytest.mark.parametrize('overrides, message', [
    (dict(command_interface='effort'), r"'command_interface' = 'effort' is not one of"),
    (dict(diagnostics_rate=20.0), r"'diagnostics_rate' = 20.0 is outside the allowed range \[1.0, 10.0\]"),
])
def test_safety_config_validation(overrides, message):
    with pytest.raises(ParamError, match=message):
        SafetyNodeConfig(**overrides)


@pytest.mark.parametrize('overrides, message', [
    (dict(image_size=72), 'image_size = 72 must be a multiple of 16'),
    (dict(rate=20.0, deadline=0.08), r'deadline = 0.08 s exceeds the control period 1/rate = 0.0500 s'),
    (dict(cameras=('a',)), r'cameras \(1\) and camera_topics \(2\) must be non-empty and of equal length'),
    (dict(n_points=1), r"'n_points' = 1 is outside the allowed range \[2, 100\]"),
])
def test_policy_config_validation(overrides, message):
    with pytest.raises(ParamError, match=message):
        PolicyNodeConfig(**overrides)


def test_configs_are_frozen_and_every_field_is_documented():
    config = PolicyNodeConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.rate = 1.0
    for cls in params.NODE_CONFIGS.values():
        for field in dataclasses.fields(cls):
            assert field.metadata['description'], f'{cls.__name__}.{field.name} has no description'
    assert params.declared_names(PolicyNodeConfig) >= {'checkpoint', 'camera_topics', 'use_sim_time'}


def test_policy_node_refuses_to_start_without_checkpoint(context):
    from gato_ros.ros.nodes.policy_node import PolicyNode, StartupError

    with pytest.raises(StartupError, match=r"no checkpoint \(parameter 'checkpoint' is empty\).*"
                                           r'allow_random_weights:=true'):
        PolicyNode(context=context)


def test_safety_node_resolves_the_command_interface(context):
    from gato_ros.ros.nodes.safety_controller_node import SafetyControllerNode

    node = SafetyControllerNode(context=context, parameter_overrides=[
        Parameter('robot', value='sawyer'), Parameter('command_interface', value='joint_trajectory')])
    assert node.command_topic == '/joint_trajectory_controller/joint_trajectory'   # Sawyer's own controller
    assert node.gripper_topic == '/gripper_controller/commands'
    assert node.filter.config.joint_names[0] == 'right_j0'
    node.destroy_node()
    ur5e = SafetyControllerNode(context=context, parameter_overrides=[Parameter('command_interface',
                                                                                value='joint_trajectory')])
    assert ur5e.command_topic == '/scaled_joint_trajectory_controller/joint_trajectory'   # the UR driver's
    ur5e.destroy_node()


def test_sim_node_listens_on_the_robots_trajectory_topic():
    assert params.SimNodeConfig().trajectory_command_topic == '/scaled_joint_trajectory_controller/joint_trajectory'
    sawyer = params.SimNodeConfig(robot='sawyer')
    assert sawyer.trajectory_command_topic == '/joint_trajectory_controller/joint_trajectory'
    assert params.SimNodeConfig(trajectory_command_topic='/jtc').trajectory_command_topic == '/jtc'


def test_the_policy_waits_out_the_sims_camera_period_and_delivery():
    # The newest sim frame is up to 1/camera_rate + CAMERA_LAG of sim time old before delivery; at a 0.1 s
    # stale_timeout a busy CI machine (33 ms delivery) skipped every other step and the expert demo stacked 0/1.
    from gato_ros.ros.nodes.sim_node import CAMERA_LAG
    oldest = 1.0 / params.SimNodeConfig().camera_rate + CAMERA_LAG
    assert PolicyNodeConfig().stale_timeout >= oldest + 0.05


@pytest.mark.parametrize('node_name, key, message', [
    ('policy_node', 'rat', r"policy_node: unknown parameter 'rat'; did you mean 'rate'\?"),
    ('safety_controller_node', 'stale_timout', r"unknown parameter 'stale_timout'; did you mean 'stale_timeout'\?"),
    ('policy_node', 'xyzzy', r"unknown parameter 'xyzzy'; its parameters are allow_random_weights, camera_topics"),
])
def test_unknown_yaml_key_stops_the_node_naming_the_closest(context, tmp_path, node_name, key, message):
    path = tmp_path / 'typo.yaml'
    path.write_text(yaml.safe_dump({f'/**/{node_name}': {'ros__parameters': {key: 10.0}}}))
    node = make_node(context, node_name, params_file=path)
    with pytest.raises(ParamError, match=message):
        params.declare(node, params.NODE_CONFIGS[node_name])
    node.destroy_node()


def test_a_sibling_nodes_parameter_given_to_every_node_passes(context):
    # `-p camera_rate:=15.0` (sim_node's) reaches every node of the process, as `gato-ros demo` does
    node = rclpy.create_node('safety_controller_node', namespace='/gato', context=context,
                             cli_args=['--ros-args', '-p', 'camera_rate:=15.0', '-p', 'use_sim_time:=false'])
    assert params.declare(node, SafetyNodeConfig).rate == 250.0
    node.destroy_node()


@pytest.mark.parametrize('yaml_name, node_name', [('policy.yaml', 'policy_node'),
                                                  ('safety_controller.yaml', 'safety_controller_node'),
                                                  ('sim.yaml', 'sim_node')])
def test_packaged_yaml_matches_the_config_dataclass(yaml_name, node_name):
    """Every key of config/<node>.yaml is a field of its params.py dataclass, and its value is the field's default
    unless the YAML line says `# overrides ...` (an intentional deployment choice); the dataclass is the truth."""
    text = (ROOT / 'config' / yaml_name).read_text()
    (section,) = yaml.safe_load(text).values()
    values = section['ros__parameters']
    fields = {f.name: f.default for f in dataclasses.fields(params.NODE_CONFIGS[node_name])}
    assert not set(values) - set(fields), f'{yaml_name}: keys without a {node_name} parameter'
    lines = {line.split(':')[0].strip(): line for line in text.splitlines() if ':' in line}
    for key, value in values.items():
        default = list(fields[key]) if isinstance(fields[key], tuple) else fields[key]
        if value != default or type(value) is not type(default):
            assert 'overrides' in lines[key].partition('#')[2], \
                f'{yaml_name}: {key}: {value!r} differs from the default {default!r} without an "# overrides" comment'
