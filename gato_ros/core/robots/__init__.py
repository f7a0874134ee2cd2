"""Robot descriptions: profiles (YAML + URDF limits), tool kinematics and the policy's Cartesian action space."""

from gato_ros.core.robots.action import ACTION_DIM, GRIP_HYSTERESIS, CartesianActionSpace, GripLatch
from gato_ros.core.robots.kinematics import Kinematics, tool_yaw
from gato_ros.core.robots.profile import COMMAND_INTERFACES, ProfileError, RobotProfile, load_profile

__all__ = ['ACTION_DIM', 'COMMAND_INTERFACES', 'GRIP_HYSTERESIS', 'CartesianActionSpace', 'GripLatch', 'Kinematics',
           'ProfileError', 'RobotProfile', 'load_profile', 'tool_yaw']
