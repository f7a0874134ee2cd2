"""Simulation: sim_node (MuJoCo, speaks the driver's topics and /clock) + arm.launch.py on sim time.

  ros2 launch gato_ros sim.launch.py robot:=sawyer checkpoint:=/path/to/checkpoint
Every arm.launch.py argument (checkpoint, device, command_interface, ...) is accepted.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare('gato_ros')
    return LaunchDescription([
        DeclareLaunchArgument('robot', default_value='ur5e', description='simulated arm: ur5e or sawyer'),
        DeclareLaunchArgument('use_sim_time', default_value='true',
                              description='policy and safety nodes follow the simulator /clock'),
        Node(package='gato_ros', executable='sim_node', name='sim_node', output='screen',
             parameters=[PathJoinSubstitution([share, 'config', 'sim.yaml']),
                         {'robot': LaunchConfiguration('robot')}]),
        IncludeLaunchDescription(
            PathJoinSubstitution([share, 'launch', 'arm.launch.py']),
            launch_arguments={'robot': LaunchConfiguration('robot'),
                              'use_sim_time': LaunchConfiguration('use_sim_time'),
                              'robot_state_publisher': 'true'}.items()),
    ])
