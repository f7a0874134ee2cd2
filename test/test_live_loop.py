"""The live loop's process layout and timing reports (issues 11 and 14): the safety controller in a process of its
own with its placement, the real-time option's refusal, the policy step off the executor thread, and the gap and
rate figures computed from stamp series. Performance itself is measured by `gato-ros bringup --json`, `gato-ros demo
--json` and `gato-ros bench safety`, never asserted on time here."""

import ctypes
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState

from ros_helpers.fake_arm import wait_for
from ros_helpers.spinner import BackgroundSpinner

from gato_ros.core.policy import PolicyResult, PolicyStatus
from gato_ros.core.robots import load_profile
from gato_ros.core.stats import TickSummary
from gato_ros.ros import bringup, placement
from gato_ros.ros.demo.report import deadline_summary
from gato_ros.ros.node_process import NodeProcess, NodeProcessError
from gato_ros.ros.nodes.policy_node import PolicyNode

def test_tick_summary_from_a_synthetic_stamp_series():
    period = 0.004
    first = np.arange(100) * period                                     # 100 commands, on time
    second = np.concatenate([np.arange(50), np.arange(54, 104)]) * period + 10.0  # 4 ticks missing: a 5-tick gap
    summary = TickSummary.from_runs([first, second], configured_hz=250.0, limit_s=0.012)
    assert summary.count == 200
    assert summary.longest_gap_ticks == pytest.approx(5.0) and summary.longest_gap_ms == pytest.approx(20.0)
    assert summary.gaps_over_limit == 1  # the 20 ms gap; the 10 s between the runs is not a gap
    # 198 intervals over 99 + 103 periods of stamps
    assert summary.rate_hz == pytest.approx(198 / (202 * period))
    assert summary.rate_fraction == pytest.approx(summary.rate_hz / 250.0)
    assert TickSummary.from_runs([[1.0]], 250.0).to_dict()['longest_gap_ticks'] is None


def test_deadline_summary_counts_the_steps_over_the_deadline():
    got = deadline_summary([0.020, 0.079, 0.081, 0.030], deadline=0.08)
    assert got == {'deadline_ms': 80.0, 'steps': 4, 'missed': 1, 'inside_fraction': 0.75}
    assert deadline_summary([], 0.08)['inside_fraction'] is None


def test_realtime_priority_out_of_range_is_one_clear_error():
    with pytest.raises(placement.PlacementError, match=r"safety_controller_node: real-time priority 150 is outside "
                                                     r"SCHED_FIFO's 1\.\.99"):
        placement.place(placement.Placement(realtime_priority=150), 'safety_controller_node')


def _without_sys_nice():
    """In the child before exec: drop CAP_SYS_NICE from the bounding set (root then execs without it) and allow no
    real-time priority, as for an ordinary user."""
    PR_CAPBSET_DROP, CAP_SYS_NICE = 24, 23
    ctypes.CDLL(None, use_errno=True).prctl(PR_CAPBSET_DROP, CAP_SYS_NICE)
    resource.setrlimit(resource.RLIMIT_RTPRIO, (0, 0))


@pytest.mark.skipif(os.geteuid() != 0, reason='needs root to take the privilege away again')
def test_realtime_refused_without_the_privilege_is_one_line():
    done = subprocess.run([sys.executable, '-m', 'gato_ros.cli', 'bringup', '--robot', 'ur5e',
                           '--allow-random-weights', '--realtime'], capture_output=True, text=True, timeout=180,
                          preexec_fn=_without_sys_nice)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done
    assert lines == ['gato-ros bringup failed to start: PlacementError: policy_node: SCHED_FIFO priority 70 is not '
                     'permitted for this user: run as root, give the user an rtprio limit (/etc/security/limits.conf, '
                     '`ulimit -r`) or CAP_SYS_NICE, or run without the real-time option'], done.stderr


def test_a_refused_placement_answers_the_start_with_its_reason():
    process = NodeProcess('safety_controller_node', bringup.SafetyFactory(bringup.BringupOptions()),
                          bringup.init_args(), placement.Placement(realtime_priority=150))
    try:
        with pytest.raises(NodeProcessError, match="real-time priority 150 is outside SCHED_FIFO's"):
            process.start()
    finally:
        process.close()


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason='SCHED_FIFO needs root here')
def test_safety_controller_runs_in_its_own_placed_process(context):
    """Real rclpy: the node comes up in a child process with its CPUs and SCHED_FIFO, commands the arm from this
    process's /joint_states, and its publication stamps come back with stop()."""
    profile = load_profile('ur5e')
    cpu = max(os.sched_getaffinity(0))
    process = NodeProcess('safety_controller_node', bringup.SafetyFactory(bringup.BringupOptions()),
                          bringup.init_args(['-p', 'rate:=100.0']), placement.Placement((cpu,), 10))
    node = rclpy.create_node('driver', context=context)
    joints = node.create_publisher(JointState, '/joint_states', 10)
    node.create_timer(0.01, lambda: joints.publish(JointState(name=list(profile.joint_names),
                                                              position=profile.ready.tolist())))
    spinner = BackgroundSpinner(context, [node])
    try:
        process.start()
        assert process.pid != os.getpid()
        assert os.sched_getaffinity(process.pid) == {cpu}
        assert os.sched_getscheduler(process.pid) == os.SCHED_FIFO
        assert os.sched_getparam(process.pid).sched_priority == 10
        assert wait_for(lambda: ('safety_controller_node', '/gato') in node.get_node_names_and_namespaces(), 30)
        time.sleep(2.0)  # let it command the arm
        measured = process.stop()
    finally:
        process.close()
        spinner.stop()
        node.destroy_node()
    assert measured['rate_hz'] == 100.0 and len(measured['wall']) == len(measured['stamps']) > 10
    summary = TickSummary.from_runs([measured['wall']], measured['rate_hz'])
    assert summary.count == len(measured['wall']) and summary.longest_gap_ticks >= 1.0


class _BlockingPolicy:
    """A policy whose step waits until released, to see what the node does meanwhile."""

    random_weights = False

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    def act(self, observation):
        self.entered.set()
        self.release.wait(30)
        return PolicyResult(None, 0.5, PolicyStatus.OK)


def test_the_policy_step_runs_off_the_executor_thread(ros):
    """While a step computes, the executor still takes /joint_states: a slow step never holds up the inputs."""
    context, executor = ros
    profile = load_profile('ur5e')
    policy = _BlockingPolicy()
    cameras = ['/camera/front_left/image_raw', '/camera/front_right/image_raw']
    node = PolicyNode(policy=policy, context=context, parameter_overrides=[
        Parameter('stale_timeout', value=5.0), Parameter('camera_topics', value=cameras)])
    driver = rclpy.create_node('driver', context=context)
    images = [driver.create_publisher(Image, topic, 10) for topic in cameras]
    joints = driver.create_publisher(JointState, '/joint_states', 10)

    def publish():
        for pub in images:
            pub.publish(Image(height=64, width=64, encoding='rgb8', step=192, data=bytes(64 * 64 * 3)))
        joints.publish(JointState(name=list(profile.joint_names), position=profile.ready.tolist()))

    driver.create_timer(0.02, publish)
    executor.add_node(node)
    executor.add_node(driver)
    try:
        deadline = time.monotonic() + 30
        while not policy.entered.is_set() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert policy.entered.is_set(), 'no step started'
        during = node._joint_state
        for _ in range(20):
            executor.spin_once(timeout_sec=0.05)
        assert node._joint_state is not during, 'no /joint_states was taken while the step ran'
    finally:
        policy.release.set()
        executor.remove_node(driver)
        executor.remove_node(node)
        driver.destroy_node()
        node.destroy_node()
