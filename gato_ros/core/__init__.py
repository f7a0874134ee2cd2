"""Pure core: numpy / torch / opencv / transforms3d / mujoco / pinocchio only.

Nothing under this package may import rclpy, rosidl or a ROS message package
(test/test_import_boundary.py enforces it). Core functions take time and inputs
as arguments and return values plus a status, so tests can drive them.
"""
