"""Sawyer: arm.launch.py (policy_node + safety_controller_node + robot_state_publisher) beside its ros2_control port.

Start the ros2_control port first with forward_position_controller active (docs/ros.md), then:
  ros2 launch gato_ros sawyer.launch.py checkpoint:=/path/to/checkpoint
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('robot', default_value='sawyer',
                              description='robot profile: sawyer or a profile YAML path'),
        DeclareLaunchArgument('robot_state_publisher', default_value='true',
                              description='start robot_state_publisher with the gato_ros URDF (for rviz)'),
        IncludeLaunchDescription(
            PathJoinSubstitution([FindPackageShare('gato_ros'), 'launch', 'arm.launch.py']),
            launch_arguments={'robot': LaunchConfiguration('robot'),
                              'robot_state_publisher': LaunchConfiguration('robot_state_publisher')}.items()),
    ])
