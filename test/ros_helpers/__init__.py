"""Helpers for the ROS integration tests: a fake arm that plays cameras and /joint_states over real DDS."""
