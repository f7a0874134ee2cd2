"""gato_ros: a Gato-style generalist transformer policy for ROS 2 robot arms."""

__version__ = '0.1.0'
