"""The only place ROS parameter names are spelled: one frozen dataclass per node, one field per parameter.

Each field's metadata carries the description and the allowed range or choices; `declare` declares them on a
node with matching ParameterDescriptors and builds the frozen config, so a bad YAML value fails at start-up
with a message naming the node, the parameter and the allowed range, and a misspelt key (`rat:`) with the key
and the closest parameter name.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from typing import TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node

from gato_ros.core.robots import COMMAND_INTERFACES, GRIP_HYSTERESIS, load_profile
from gato_ros.core.robots.profile import FORWARD_TOPICS


class ParamError(ValueError):
    """A parameter value outside its allowed range or choices; the message names both."""


def camera_topic(camera: str) -> str:
    """The image topic of a camera, as sim_node publishes it and policy_node subscribes to it by default."""
    return f'/camera/{camera}/image_raw'


def _param(default, description: str, *, range=None, choices=None):
    return field(default=default, metadata={'description': description, 'range': range, 'choices': choices})


def _check(node_name: str, config) -> None:
    for f in dataclasses.fields(config):
        value, lo_hi, choices = getattr(config, f.name), f.metadata['range'], f.metadata['choices']
        if lo_hi is not None and not lo_hi[0] <= value <= lo_hi[1]:
            raise ParamError(f'{node_name} parameter {f.name!r} = {value!r} is outside the allowed range '
                             f'[{lo_hi[0]}, {lo_hi[1]}]')
        if choices is not None and value not in choices:
            raise ParamError(f'{node_name} parameter {f.name!r} = {value!r} is not one of {list(choices)}')


@dataclass(frozen=True)
class PolicyNodeConfig:
    """policy_node: cameras + /joint_states -> Gato step at a fixed rate -> ~/proposal."""
    robot: str = _param('ur5e', 'robot profile: ur5e, sawyer or a profile YAML path')
    checkpoint: str = _param('', 'checkpoint directory (model.safetensors + config.json); empty = none')
    allow_random_weights: bool = _param(False, 'without a checkpoint, run randomly initialised weights '
                                        '(bring-up and tests only; the arm moves meaninglessly)')
    preset: str = _param('tiny', 'model preset for random weights (ignored with a checkpoint)')
    seed: int = _param(0, 'seed of the random weights', range=(0, 2**31 - 1))
    device: str = _param('cpu', 'torch device: cpu, cuda, cuda:N')
    max_context: int = _param(0, "policy context window (tokens); 0 = the checkpoint's training window (random "
                              "weights: the model's context). Smaller = cheaper steps", range=(0, 65536))
    threads: int = _param(1, 'torch CPU threads for the policy (0 = torch default); 1 leaves a core to the '
                          'safety loop and the other nodes', range=(0, 256))
    cameras: tuple[str, ...] = _param(('front_left', 'wrist'),   # checkpoints/gato-stack's
                                      "camera names; the observation keys are 'image_<name>'")
    camera_topics: tuple[str, ...] = _param(
        (camera_topic('front_left'), camera_topic('wrist')),
        "one topic per camera; sensor_msgs/Image, or CompressedImage when the topic ends in '/compressed'")
    joint_states_topic: str = _param('/joint_states', 'sensor_msgs/JointState with the arm joints')
    image_size: int = _param(64, "model image resolution (px, square, multiple of 16)", range=(16, 512))
    rate: float = _param(10.0, 'control steps per second (Hz)', range=(0.5, 100.0))
    deadline: float = _param(0.08, 'a step slower than this (s) is dropped and reported; at most 1/rate',
                             range=(0.001, 2.0))
    stale_timeout: float = _param(0.15, 'an input older than this (s) skips the step and stops the arm',
                                  range=(0.01, 5.0))
    horizon: float = _param(0.2, 'time span (s) covered by each proposal', range=(0.01, 2.0))
    n_points: int = _param(5, 'trajectory points per proposal', range=(2, 100))
    grip_hysteresis: float = _param(GRIP_HYSTERESIS, 'the learned grip closes only above +band and opens only '
                                    'below -band (0 = as decoded)', range=(0.0, 0.99))
    diagnostics_rate: float = _param(2.0, '/diagnostics publications per second (Hz)', range=(1.0, 10.0))

    def __post_init__(self):
        _check('policy_node', self)
        if len(self.cameras) != len(self.camera_topics) or not self.cameras:
            raise ParamError(f'policy_node parameters cameras ({len(self.cameras)}) and camera_topics '
                             f'({len(self.camera_topics)}) must be non-empty and of equal length')
        if self.image_size % 16:
            raise ParamError(f'policy_node parameter image_size = {self.image_size} must be a multiple of 16 '
                             '(Gato 16x16 patches)')
        if self.deadline > 1.0 / self.rate:
            raise ParamError(f'policy_node parameter deadline = {self.deadline} s exceeds the control period '
                             f'1/rate = {1.0 / self.rate:.4f} s')


@dataclass(frozen=True)
class SafetyNodeConfig:
    """safety_controller_node: proposals -> SafetyFilter at a fixed rate -> the arm's command topic."""
    robot: str = _param('ur5e', 'robot profile: ur5e, sawyer or a profile YAML path')
    rate: float = _param(250.0, 'filter ticks and commands per second (Hz)', range=(10.0, 1000.0))
    command_interface: str = _param('', "'' = the profile's, else forward_position, forward_velocity or "
                                    'joint_trajectory', choices=('',) + COMMAND_INTERFACES)
    command_topic: str = _param('', "'' = the robot profile's topic for command_interface (command_topic_for)")
    gripper_topic: str = _param('', "'' = the profile's gripper_topic (Float64MultiArray, 0 open .. 1 closed)")
    proposal_topic: str = _param('/gato/policy_node/proposal', 'trajectory_msgs/JointTrajectory proposals')
    gripper_command_topic: str = _param('/gato/policy_node/gripper', 'std_msgs/Float64 gripper command')
    joint_states_topic: str = _param('/joint_states', 'sensor_msgs/JointState with the arm joints')
    speed_scaling_topic: str = _param('/speed_scaling_state_broadcaster/speed_scaling',
                                      'std_msgs/Float64 speed scaling in percent (UR); 100 until published')
    stale_timeout: float = _param(0.25, '/joint_states or the proposal older than this (s) -> brake to a hold; '
                                  'must exceed the policy period plus its step latency', range=(0.005, 5.0))
    position_margin: float = _param(0.1, 'margin inside the joint position limits (rad)', range=(0.0, 0.5))
    diagnostics_rate: float = _param(2.0, '/diagnostics and ~/status publications per second (Hz)',
                                     range=(1.0, 10.0))
    shutdown_timeout: float = _param(2.0, 'longest time (s) spent decelerating to hold on shutdown',
                                     range=(0.1, 10.0))
    state_tolerance: float = _param(0.05, 'a measured position this far (rad) outside the URDF limits is rejected '
                                    'as invalid input (brake)', range=(0.0, 0.5))
    jump_tolerance: float = _param(0.02, 'a measured position that moved more than velocity limit x elapsed + this '
                                   '(rad) since the previous sample is rejected as invalid input (brake)',
                                   range=(0.0, 0.5))
    tracking_error_limit: float = _param(0.2, 'measured position vs the command (forward_velocity: vs where the '
                                         'velocity commands should have taken the arm) (rad); above it -> brake to '
                                         'rest, latched until ~/reset', range=(0.001, 1.0))
    proposal_publisher: str = _param('', "the only publisher whose ~/proposal is followed: a node name "
                                     "('/gato/policy_node') or an endpoint GID (hex); '' = the first one seen")
    link_check: bool = _param(True, "check every moving link's URDF collision geometry against the table plane")

    def __post_init__(self):
        _check('safety_controller_node', self)


@dataclass(frozen=True)
class SimNodeConfig:
    """sim_node parameters (config/sim.yaml)."""
    robot: str = _param('ur5e', 'robot profile: ur5e, sawyer or a profile YAML path')
    task: tuple[str, ...] = _param(('red', 'blue'), 'stack task[0] on task[1]: two of red, green, blue')
    seed: int = _param(0, 'seed of the first episode; ~/reset uses the next one', range=(0, 2**31 - 1))
    rate: float = _param(250.0, 'simulation steps and /joint_states, /clock messages per second of wall time (Hz)',
                         range=(100.0, 1000.0))
    rate_factor: float = _param(1.0, 'sim seconds per wall second (1 = real time)', range=(0.1, 10.0))
    cameras: tuple[str, ...] = _param(('front_left', 'wrist'),   # what checkpoints/gato-stack reads
                                      'cameras to publish on /camera/<name>/image_raw (gato_ros.core.sim.CAMERA_NAMES)')
    image_size: int = _param(64, 'camera image width = height (px)', range=(16, 1024))
    camera_rate: float = _param(15.0, 'camera images per second of sim time (Hz); physics waits for a late frame',
                                range=(1.0, 30.0))
    status_rate: float = _param(5.0, 'task status messages per second of wall time (Hz)', range=(0.5, 50.0))
    joint_states_topic: str = _param('/joint_states', 'sensor_msgs/JointState, arm then finger joints')
    position_command_topic: str = _param(FORWARD_TOPICS['forward_position'],
                                         'std_msgs/Float64MultiArray joint positions, profile joint order')
    velocity_command_topic: str = _param(FORWARD_TOPICS['forward_velocity'],
                                         'std_msgs/Float64MultiArray joint velocities, profile joint order')
    trajectory_command_topic: str = _param('', "trajectory_msgs/JointTrajectory; header stamp 0 = start on receipt; "
                                           "'' = the robot profile's trajectory_topic")
    gripper_topic: str = _param('/gripper_controller/commands',
                                'std_msgs/Float64MultiArray, one value 0 open .. 1 closed')
    task_status_topic: str = _param('/gato/sim/task_status', 'std_msgs/String with the task status as JSON')

    def __post_init__(self):
        from gato_ros.core.sim import SimConfig  # imports MuJoCo: only when a sim_node is configured

        _check('sim_node', self)
        try:
            SimConfig(robot=self.robot, task=tuple(self.task), cameras=tuple(self.cameras),
                      image_size=self.image_size)
        except ValueError as error:
            raise ParamError(f'sim_node parameters task / cameras / image_size: {error}') from None
        if not self.trajectory_command_topic:   # the robot's own trajectory controller
            object.__setattr__(self, 'trajectory_command_topic', load_profile(self.robot).trajectory_topic)


NODE_CONFIGS = {'policy_node': PolicyNodeConfig, 'safety_controller_node': SafetyNodeConfig,
                'sim_node': SimNodeConfig}
C = TypeVar('C')


def declared_names(config_cls) -> set[str]:
    """Parameter names a node with this config declares (plus use_sim_time, which every rclpy node has)."""
    return {f.name for f in dataclasses.fields(config_cls)} | {'use_sim_time'}


def _descriptor(f: dataclasses.Field) -> ParameterDescriptor:
    desc = ParameterDescriptor(description=f.metadata['description'], read_only=True)
    lo_hi = f.metadata['range']
    if lo_hi is not None and isinstance(f.default, float):
        desc.floating_point_range = [FloatingPointRange(from_value=float(lo_hi[0]), to_value=float(lo_hi[1]))]
    elif lo_hi is not None:
        desc.integer_range = [IntegerRange(from_value=int(lo_hi[0]), to_value=int(lo_hi[1]), step=1)]
    if f.metadata['choices'] is not None:
        desc.additional_constraints = f'one of {list(f.metadata["choices"])}'
    return desc


def _reject_unknown(node: Node, config_cls) -> None:
    """A value given for a parameter no gato_ros node has (a YAML typo such as `rat:`) stops the node, naming
    the closest parameter of this node. Names of the other gato_ros nodes pass: `-p name:=value` and `/**`
    sections reach every node of a process."""
    anywhere = set().union(*(declared_names(cls) for cls in NODE_CONFIGS.values()))
    # rclpy keeps the values from --params-file, -p and parameter_overrides here; it has no public accessor.
    for name in sorted(getattr(node, '_parameter_overrides', {})):
        if node.has_parameter(name) or name in anywhere:
            continue
        ours = sorted(declared_names(config_cls))
        close = difflib.get_close_matches(name, ours, n=1)
        hint = f'did you mean {close[0]!r}?' if close else f"its parameters are {', '.join(ours)}"
        raise ParamError(f'{node.get_name()}: unknown parameter {name!r}; {hint}')


def declare(node: Node, config_cls: type[C]) -> C:
    """Declare every field of `config_cls` as a read-only parameter of `node`; return the frozen config.
    Raises ParamError on a bad value or an unknown parameter name."""
    node_name = node.get_name()
    values = {}
    for f in dataclasses.fields(config_cls):
        default = list(f.default) if isinstance(f.default, tuple) else f.default
        try:
            value = node.declare_parameter(f.name, default, _descriptor(f)).value
        except InvalidParameterValueException as exc:
            lo_hi = f.metadata['range']
            allowed = f'allowed range [{lo_hi[0]}, {lo_hi[1]}]' if lo_hi else 'see its description'
            raise ParamError(f'{node_name} parameter {f.name!r}: {exc}; {allowed}') from None
        except InvalidParameterTypeException:  # e.g. `rate: 10` in YAML for a double
            raise ParamError(f'{node_name} parameter {f.name!r} has the wrong type; expected '
                             f'{type(f.default).__name__} like {default!r}') from None
        values[f.name] = tuple(value) if isinstance(f.default, tuple) else value
    _reject_unknown(node, config_cls)
    return config_cls(**values)
