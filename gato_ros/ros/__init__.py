"""Thin ROS 2 shell: the only place that imports rclpy and message types."""
