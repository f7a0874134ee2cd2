"""UR5e: arm.launch.py (policy_node + safety_controller_node) beside ur_robot_driver, which publishes the TF.

Start the driver first with forward_position_controller active (docs/ros.md), then:
  ros2 launch gato_ros ur5e.launch.py checkpoint:=/path/to/checkpoint device:=cuda
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    return LaunchDescription([
        DeclareLaunchArgument('robot', default_value='ur5e',
                              description='robot profile: ur5e or a profile YAML path'),
        DeclareLaunchArgument('robot_state_publisher', default_value='false',
                              description='start robot_state_publisher with the gato_ros URDF (for rviz); '
                                          'ur_robot_driver already runs one'),
        IncludeLaunchDescription(
            PathJoinSubstitution([FindPackageShare('gato_ros'), 'launch', 'arm.launch.py']),
            launch_arguments={'robot': LaunchConfiguration('robot'),
                              'robot_state_publisher': LaunchConfiguration('robot_state_publisher')}.items()),
    ])
