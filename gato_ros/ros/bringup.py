"""Wiring above the nodes: policy_node + safety_controller_node for one arm, as `gato-ros bringup` and
`gato-ros demo` run them in one process. The runtime below them (executor, spin, signals) is ros/runtime.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from rclpy.node import Node
from rclpy.parameter import Parameter

from gato_ros.core.stats import LatencySummary, RateSummary
from gato_ros.resources import resource_path
from gato_ros.ros import runtime
from gato_ros.ros.nodes.policy_node import PolicyNode
from gato_ros.ros.nodes.safety_controller_node import SafetyControllerNode


@dataclass(frozen=True)
class BringupOptions:
    """What `gato-ros bringup` sets on top of config/policy.yaml and config/safety_controller.yaml;
    None keeps the YAML value."""
    robot: str = 'ur5e'
    checkpoint: str | None = None
    allow_random_weights: bool | None = None
    preset: str | None = None
    device: str | None = None
    command_interface: str | None = None
    use_sim_time: bool | None = None


def init(ros_args=()) -> None:
    """rclpy.init with the packaged node YAMLs first, so later --params-file/-p arguments override them."""
    runtime.init(['gato-ros', '--ros-args',
                  '--params-file', str(resource_path('config', 'policy.yaml')),
                  '--params-file', str(resource_path('config', 'safety_controller.yaml')), *ros_args])


def _overrides(**values) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items() if value is not None]


def build_nodes(options: BringupOptions, policy=None) -> list[Node]:
    """policy_node + safety_controller_node for one arm (raises with a clear message on bad configuration)."""
    common = dict(robot=options.robot, use_sim_time=options.use_sim_time)
    safety = SafetyControllerNode(parameter_overrides=_overrides(**common,
                                                                 command_interface=options.command_interface))
    try:
        policy_node = PolicyNode(policy=policy, parameter_overrides=_overrides(
            **common, checkpoint=options.checkpoint, allow_random_weights=options.allow_random_weights,
            preset=options.preset, device=options.device))
    except BaseException:
        safety.destroy_node()
        raise
    return [policy_node, safety]


def bringup(options: BringupOptions, ros_args=(), on_ready=None) -> int:
    """Both nodes in one process until Ctrl-C or SIGTERM. `on_ready(nodes)` runs before spinning;
    after shutdown the nodes' measurements remain readable (report)."""
    init(ros_args)
    try:
        nodes = build_nodes(options)
    except Exception as exc:
        return runtime.startup_failed('gato-ros bringup', exc)
    if on_ready is not None:
        on_ready(nodes)
    return runtime.spin(nodes)


def report(nodes) -> dict:
    """What bringup measured: the safety controller's command rate and the policy's step latency."""
    policy_node, safety = nodes
    return {'safety_commands': RateSummary.from_times(safety.publish_times).to_dict(),
            'policy_latency': LatencySummary.from_seconds(policy_node.latencies).to_dict()}
