"""Test-session environment: an isolated DDS domain, headless MuJoCo, bounded torch threads."""

import os
import random

# A DDS domain of our own so parallel test runs on one host never see each other's topics.
os.environ.setdefault('ROS_DOMAIN_ID', str(random.Random(os.getpid()).randint(1, 100)))
os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
os.environ.setdefault('MUJOCO_GL', 'egl')
os.environ.setdefault('PYOPENGL_PLATFORM', 'egl')
# One torch thread per process: tests run beside ROS and MuJoCo processes on 2 cores, where two threads
# oversubscribe and make a tiny model's step 20x slower (measured, docs/model.md).
os.environ.setdefault('OMP_NUM_THREADS', '1')


import pytest  # noqa: E402  (after the environment above: rclpy reads it on import)


@pytest.fixture
def context():
    """A private rclpy context for one test (nodes, publishers), shut down afterwards."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)


@pytest.fixture
def ros(context):
    """A private rclpy context and a single-threaded executor on it."""
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor(context=context)
    yield context, executor
    executor.shutdown()
