"""Simulation: sim_node (MuJoCo, speaks the driver's topics and /clock) + the robot's launch file on sim time.

  ros2 launch gato_ros sim.launch.py robot:=sawyer checkpoint:=/path/to/checkpoint
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare('gato_ros')
    return LaunchDescription([
        DeclareLaunchArgument('robot', default_value='ur5e', description='simulated arm: ur5e or sawyer'),
        DeclareLaunchArgument('checkpoint', default_value='',
                              description='Gato checkpoint directory (model.safetensors + config.json)'),
        DeclareLaunchArgument('allow_random_weights', default_value='false',
                              description='run random weights without a checkpoint (bring-up only)'),
        DeclareLaunchArgument('device', default_value='cpu', description='torch device: cpu, cuda, cuda:N'),
        DeclareLaunchArgument('use_sim_time', default_value='true',
                              description='policy and safety nodes follow the simulator /clock'),
        DeclareLaunchArgument('command_interface', default_value='forward_position',
                              description='forward_position, forward_velocity or joint_trajectory'),
        Node(package='gato_ros', executable='sim_node', name='sim_node', output='screen',
             parameters=[PathJoinSubstitution([share, 'config', 'sim.yaml']),
                         {'robot': LaunchConfiguration('robot')}]),
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([share, 'launch', [LaunchConfiguration('robot'), '.launch.py']])),
            launch_arguments={'robot': LaunchConfiguration('robot'),
                              'checkpoint': LaunchConfiguration('checkpoint'),
                              'allow_random_weights': LaunchConfiguration('allow_random_weights'),
                              'device': LaunchConfiguration('device'),
                              'use_sim_time': LaunchConfiguration('use_sim_time'),
                              'command_interface': LaunchConfiguration('command_interface'),
                              'robot_state_publisher': 'true'}.items()),
    ])
