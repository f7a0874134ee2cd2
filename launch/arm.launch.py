"""One arm: policy_node + safety_controller_node, and robot_state_publisher with urdf/<robot>.urdf for rviz.

ur5e.launch.py, sawyer.launch.py and sim.launch.py include this file with their robot's defaults:
  ros2 launch gato_ros arm.launch.py robot:=sawyer checkpoint:=/path/to/checkpoint
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import Command, LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare('gato_ros')
    use_sim_time = ParameterValue(LaunchConfiguration('use_sim_time'), value_type=bool)
    return LaunchDescription([
        DeclareLaunchArgument('robot', description='robot profile: ur5e, sawyer or a profile YAML path '
                                                   '(robot_state_publisher needs a name with urdf/<robot>.urdf)'),
        DeclareLaunchArgument('checkpoint', default_value='',
                              description='Gato checkpoint directory (model.safetensors + config.json)'),
        DeclareLaunchArgument('allow_random_weights', default_value='false',
                              description='run random weights without a checkpoint (bring-up only)'),
        DeclareLaunchArgument('device', default_value='cpu', description='torch device: cpu, cuda, cuda:N'),
        DeclareLaunchArgument('use_sim_time', default_value='false', description='use /clock time'),
        DeclareLaunchArgument('command_interface', default_value='forward_position',
                              description='forward_position, forward_velocity or joint_trajectory; '
                                          'the matching controller must be active'),
        DeclareLaunchArgument('robot_state_publisher', default_value='true',
                              description='start robot_state_publisher with the gato_ros URDF (for rviz)'),
        Node(package='gato_ros', executable='policy_node', name='policy_node', namespace='gato',
             output='screen',
             parameters=[PathJoinSubstitution([share, 'config', 'policy.yaml']),
                         {'robot': LaunchConfiguration('robot'),
                          'checkpoint': LaunchConfiguration('checkpoint'),
                          'allow_random_weights': ParameterValue(LaunchConfiguration('allow_random_weights'),
                                                                 value_type=bool),
                          'device': LaunchConfiguration('device'),
                          'use_sim_time': use_sim_time}]),
        Node(package='gato_ros', executable='safety_controller_node', name='safety_controller_node',
             namespace='gato', output='screen',
             parameters=[PathJoinSubstitution([share, 'config', 'safety_controller.yaml']),
                         {'robot': LaunchConfiguration('robot'),
                          'command_interface': LaunchConfiguration('command_interface'),
                          'use_sim_time': use_sim_time}]),
        Node(package='robot_state_publisher', executable='robot_state_publisher', output='screen',
             condition=IfCondition(LaunchConfiguration('robot_state_publisher')),
             parameters=[{'robot_description': ParameterValue(
                              Command(['cat ', PathJoinSubstitution(
                                  [share, 'urdf', [LaunchConfiguration('robot'), '.urdf']])]),
                              value_type=str),
                          'use_sim_time': use_sim_time}]),
    ])
