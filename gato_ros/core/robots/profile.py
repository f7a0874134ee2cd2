"""Robot profiles: the YAML in config/robots/ merged with the joint limits of the robot's URDF.

The URDF is the single source of truth for position and velocity limits; a profile may only tighten them
(`limits:` overrides). Every field is validated at load, and errors name the file, the field and the value.
"""

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from gato_ros.resources import resource_path

COMMAND_INTERFACES = ('forward_position', 'forward_velocity', 'joint_trajectory')
# ros2_control's forward command controllers' topics; the trajectory controller's is per robot (trajectory_topic).
FORWARD_TOPICS = {'forward_position': '/forward_position_controller/commands',
                  'forward_velocity': '/forward_velocity_controller/commands'}
DEFAULT_TRAJECTORY_TOPIC = '/joint_trajectory_controller/joint_trajectory'


class ProfileError(ValueError):
    """A robot profile (or the URDF it points to) is invalid; the message names the field and the value."""


@dataclass(frozen=True)
class RobotProfile:
    name: str                          # 'ur5e' | 'sawyer'
    joint_names: tuple[str, ...]       # arm joints in controller order
    lower: np.ndarray                  # (n,) position limits (rad): URDF, possibly tightened by the profile
    upper: np.ndarray                  # (n,)
    velocity: np.ndarray               # (n,) rad/s: URDF, possibly tightened
    acceleration: np.ndarray           # (n,) rad/s^2 (URDFs carry none, so the profile sets them)
    margin: float                      # position-limit margin (rad) the safety filter keeps
    home: np.ndarray                   # (n,) vendor home / neutral pose
    ready: np.ndarray                  # (n,) start pose: tool above the table centre, gripper pointing down
    command_interface: str             # one of COMMAND_INTERFACES
    command_topic: str                 # ros2_control command topic for the arm
    gripper_topic: str                 # Float64MultiArray, one value 0 = open .. 1 = closed
    gripper_joint_names: tuple[str, ...]  # finger joints in the URDF (reported on /joint_states)
    tool_frame: str                    # URDF frame of the tool point
    workspace_min: np.ndarray          # (3,) tool box, base frame (m)
    workspace_max: np.ndarray          # (3,)
    table_height: float                # z of the table plane in the base frame (m)
    table_clearance: float             # the tool must stay >= table_height + table_clearance (m)
    urdf_path: Path
    # JointTrajectory topic of the robot's trajectory controller (UR driver: scaled_joint_trajectory_controller)
    trajectory_topic: str = DEFAULT_TRAJECTORY_TOPIC

    def command_topic_for(self, interface: str) -> str:
        """The arm's command topic for one of COMMAND_INTERFACES: the profile's own for its command_interface,
        trajectory_topic for joint_trajectory, else the forward controller's."""
        if interface == self.command_interface:
            return self.command_topic
        return self.trajectory_topic if interface == 'joint_trajectory' else FORWARD_TOPICS[interface]

    def __post_init__(self):
        n = len(self.joint_names)
        if n == 0 or len(set(self.joint_names)) != n:
            raise ProfileError(f'joint_names must be non-empty and unique, got {self.joint_names}')
        if set(self.gripper_joint_names) & set(self.joint_names):
            raise ProfileError(f'gripper_joint_names {self.gripper_joint_names} overlap joint_names')
        for field in ('lower', 'upper', 'velocity', 'acceleration', 'home', 'ready'):
            _vector(self, field, n)
        _vector(self, 'workspace_min', 3)
        _vector(self, 'workspace_max', 3)
        for field in ('margin', 'table_height', 'table_clearance'):
            if not math.isfinite(getattr(self, field)):
                raise ProfileError(f'{field} must be finite, got {getattr(self, field)}')
        if not 0.0 <= self.margin < 0.5:
            raise ProfileError(f'margin must be in [0, 0.5) rad, got {self.margin}')
        if not 0.0 <= self.table_clearance < 0.1:
            raise ProfileError(f'table_clearance must be in [0, 0.1) m, got {self.table_clearance}')
        for field in ('velocity', 'acceleration'):
            bad = np.flatnonzero(getattr(self, field) <= 0)
            if bad.size:
                j = bad[0]
                raise ProfileError(f'{field} of {self.joint_names[j]} must be > 0, got {getattr(self, field)[j]}')
        span = self.upper - self.lower - 2 * self.margin
        if (span <= 0).any():
            j = int(np.argmin(span))
            raise ProfileError(f'limits of {self.joint_names[j]} [{self.lower[j]}, {self.upper[j]}] leave no '
                               f'room inside margin {self.margin}')
        for field in ('home', 'ready'):
            q = getattr(self, field)
            # home is the vendor's pose and only needs to be inside the limits; ready is where we start moving.
            pad = 0.0 if field == 'home' else self.margin
            lo, hi = self.lower + pad, self.upper - pad
            out = np.flatnonzero((q < lo) | (q > hi))
            if out.size:
                j = out[0]
                raise ProfileError(f'{field}[{j}] ({self.joint_names[j]}) = {q[j]} outside [{lo[j]:.4f}, {hi[j]:.4f}]')
        if (self.workspace_min >= self.workspace_max).any():
            raise ProfileError(f'workspace min {self.workspace_min} must be < max {self.workspace_max} per axis')
        if self.command_interface not in COMMAND_INTERFACES:
            raise ProfileError(f'command_interface must be one of {COMMAND_INTERFACES}, got {self.command_interface!r}')
        for field in ('command_topic', 'gripper_topic', 'trajectory_topic'):
            if not str(getattr(self, field)).startswith('/'):
                raise ProfileError(f'{field} must be an absolute topic name, got {getattr(self, field)!r}')


def _vector(profile, field: str, n: int) -> None:
    try:
        value = np.array(getattr(profile, field), dtype=np.float64)  # our own copy, made read-only below
    except (TypeError, ValueError):
        raise ProfileError(f'{field} must be numbers, got {getattr(profile, field)!r}') from None
    if value.shape != (n,):
        raise ProfileError(f'{field} must have {n} values, got shape {value.shape}')
    if not np.isfinite(value).all():
        raise ProfileError(f'{field} must be finite, got {value.tolist()}')
    value.setflags(write=False)  # a frozen profile is shared by every module; nobody may change it
    object.__setattr__(profile, field, value)


def urdf_limits(urdf_path: Path, joints) -> dict[str, tuple[float, float, float]]:
    """(lower, upper, velocity) of each named joint, read from the URDF's <limit> elements."""
    try:
        root = ET.parse(urdf_path).getroot()
    except (OSError, ET.ParseError) as err:
        raise ProfileError(f'cannot read URDF {urdf_path}: {err}') from err
    by_name = {j.get('name'): j for j in root.iter('joint')}
    limits = {}
    for name in joints:
        joint = by_name.get(name)
        if joint is None:
            raise ProfileError(f'{urdf_path}: joint {name!r} not found (joints: {sorted(by_name)})')
        limit = joint.find('limit')
        if joint.get('type') not in ('revolute', 'prismatic') or limit is None:
            raise ProfileError(f'{urdf_path}: joint {name!r} must be revolute/prismatic with a <limit>')
        limits[name] = tuple(float(limit.get(k)) for k in ('lower', 'upper', 'velocity'))
    return limits


def finger_limits(profile: 'RobotProfile') -> tuple[np.ndarray, np.ndarray]:
    """(closed, open) positions of the gripper's finger joints: their URDF lower and upper limits."""
    limits = urdf_limits(profile.urdf_path, profile.gripper_joint_names)
    closed, opened = np.array([limits[n][:2] for n in profile.gripper_joint_names], dtype=np.float64).T
    return closed, opened


def load_profile(name_or_path: str) -> RobotProfile:
    """Load 'ur5e' / 'sawyer' (config/robots/<name>.yaml) or a YAML path; raises ProfileError."""
    path = Path(name_or_path)
    if path.suffix not in ('.yaml', '.yml'):
        try:
            path = resource_path('config', 'robots', f'{name_or_path}.yaml')
        except FileNotFoundError as err:
            raise ProfileError(f'unknown robot {name_or_path!r}: {err}') from err
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ProfileError(f'cannot read profile {path}: {err}') from err
    try:
        return _from_dict(raw, path)
    except ProfileError as err:
        raise ProfileError(f'{path}: {err}') from None


_REQUIRED = ('name', 'urdf', 'joint_names', 'gripper_joint_names', 'tool_frame', 'command_interface',
             'command_topic', 'gripper_topic', 'margin', 'acceleration', 'home', 'ready', 'workspace',
             'table_height', 'table_clearance')
_OPTIONAL = ('limits', 'trajectory_topic')


def _from_dict(raw, path: Path) -> RobotProfile:
    if not isinstance(raw, dict):
        raise ProfileError('profile must be a mapping')
    unknown = set(raw) - set(_REQUIRED) - set(_OPTIONAL)
    missing = [k for k in _REQUIRED if k not in raw]
    if unknown or missing:
        raise ProfileError(f'unknown fields {sorted(unknown)}, missing fields {missing}')
    joints = _names(raw, 'joint_names')
    fingers = _names(raw, 'gripper_joint_names')
    urdf = Path(raw['urdf'])
    urdf_path = urdf if urdf.is_absolute() else _find_urdf(urdf, path)
    limits = urdf_limits(urdf_path, joints)
    urdf_limits(urdf_path, fingers)  # the finger joints must exist too
    lower, upper, velocity = (np.array([limits[j][k] for j in joints]) for k in range(3))
    overrides = raw.get('limits') or {}
    if not isinstance(overrides, dict):
        raise ProfileError('limits must map joint names to {lower, upper, velocity}')
    for joint, override in overrides.items():
        if joint not in joints:
            raise ProfileError(f'limits: unknown joint {joint!r} (joint_names: {list(joints)})')
        if not isinstance(override, dict) or not set(override) <= {'lower', 'upper', 'velocity'}:
            raise ProfileError(f'limits.{joint} must be a mapping with keys lower, upper, velocity')
        i = joints.index(joint)
        for key, array, tighter in (('lower', lower, np.greater_equal), ('upper', upper, np.less_equal),
                                    ('velocity', velocity, np.less_equal)):
            if key in override:
                value = _float(override[key], f'limits.{joint}.{key}')
                if not tighter(value, array[i]):
                    raise ProfileError(f'limits.{joint}.{key} = {value} loosens the URDF limit {array[i]} of '
                                       f'joint {joint!r}; a profile may only tighten limits')
                array[i] = value
    accel = raw['acceleration']
    accel = np.full(len(joints), _float(accel, 'acceleration')) if np.isscalar(accel) else _array(accel, 'acceleration')
    workspace = raw['workspace']
    if not isinstance(workspace, dict) or set(workspace) != {'min', 'max'}:
        raise ProfileError('workspace must be a mapping with keys min and max')
    return RobotProfile(
        name=str(raw['name']), joint_names=joints, lower=lower, upper=upper, velocity=velocity,
        acceleration=accel, margin=_float(raw['margin'], 'margin'), home=_array(raw['home'], 'home'),
        ready=_array(raw['ready'], 'ready'), command_interface=str(raw['command_interface']),
        command_topic=str(raw['command_topic']), gripper_topic=str(raw['gripper_topic']),
        gripper_joint_names=fingers, tool_frame=str(raw['tool_frame']),
        workspace_min=_array(workspace['min'], 'workspace.min'),
        workspace_max=_array(workspace['max'], 'workspace.max'),
        table_height=_float(raw['table_height'], 'table_height'),
        table_clearance=_float(raw['table_clearance'], 'table_clearance'), urdf_path=urdf_path,
        trajectory_topic=str(raw.get('trajectory_topic', DEFAULT_TRAJECTORY_TOPIC)))


def _find_urdf(urdf: Path, profile_path: Path) -> Path:
    """A relative urdf is looked up next to the profile first, then in the package's urdf/ folder."""
    local = profile_path.parent / urdf
    if local.is_file():
        return local
    try:
        return resource_path('urdf', str(urdf))
    except FileNotFoundError as err:
        raise ProfileError(f'urdf {str(urdf)!r} not found next to the profile or in the package: {err}') from err


def _names(raw, field: str) -> tuple[str, ...]:
    value = raw[field]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f'{field} must be a list of joint names, got {value!r}')
    return tuple(value)


def _float(value, field: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ProfileError(f'{field} must be a number, got {value!r}') from None


def _array(value, field: str) -> np.ndarray:
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ProfileError(f'{field} must be a list of numbers, got {value!r}') from None
