"""Wiring above the nodes: policy_node and safety_controller_node for one arm, as `gato-ros bringup` and
`gato-ros demo` run them: each node in a process of its own (ros/node_process.py), so the policy's camera
messages and step never compete with the safety tick for the GIL. The runtime below them is ros/runtime.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from rclpy.parameter import Parameter

from gato_ros.core.safety.config import UR_COMMAND_TIMEOUT
from gato_ros.core.stats import LatencySummary, TickSummary
from gato_ros.resources import resource_path
from gato_ros.ros import runtime
from gato_ros.ros.placement import place, placements
from gato_ros.ros.node_process import NodeProcess
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
    realtime: bool = False  # SCHED_FIFO and CPUs per process (placement.placements)


def init_args(ros_args=()) -> list[str]:
    """rclpy arguments with the packaged node YAMLs first, so later --params-file/-p arguments override them."""
    return ['gato-ros', '--ros-args', '--params-file', str(resource_path('config', 'policy.yaml')),
            '--params-file', str(resource_path('config', 'safety_controller.yaml')), *ros_args]


def _overrides(**values) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items() if value is not None]


def policy_node(options: BringupOptions, policy=None) -> PolicyNode:
    """policy_node for one arm (raises with a clear message on bad configuration)."""
    return PolicyNode(policy=policy, parameter_overrides=_overrides(
        robot=options.robot, use_sim_time=options.use_sim_time, checkpoint=options.checkpoint,
        allow_random_weights=options.allow_random_weights, preset=options.preset, device=options.device))


@dataclass(frozen=True)
class SafetyFactory:
    """Builds safety_controller_node in its process (node_process.NodeProcess) and measures it there."""
    options: BringupOptions

    def __call__(self) -> SafetyControllerNode:
        return SafetyControllerNode(parameter_overrides=_overrides(
            robot=self.options.robot, use_sim_time=self.options.use_sim_time,
            command_interface=self.options.command_interface))

    @staticmethod
    def measure(node: SafetyControllerNode) -> dict:
        """The publication times: wall (monotonic) and on the node's clock (sim time on a simulation)."""
        return {'rate_hz': node.config.rate, 'wall': list(node.publish_times), 'stamps': list(node.publish_stamps)}


def safety_process(options: BringupOptions, ros_args=()) -> NodeProcess:
    return NodeProcess('safety_controller_node', SafetyFactory(options), init_args(ros_args),
                       placements(options.realtime)['safety'])


def bringup(options: BringupOptions, ros_args=()) -> tuple[int, dict | None]:
    """policy_node in this process, safety_controller_node in a child, until Ctrl-C or SIGTERM; then the policy
    stops and the safety controller brakes to a hold. Returns the exit code and what was measured (report)."""
    with runtime.stop_on_signals() as stop:  # Ctrl-C while starting: start, then stop at once (braking)
        safety = safety_process(options, ros_args)
        try:
            place(placements(options.realtime)['policy'], 'policy_node')
            runtime.init(init_args(ros_args))
            policy = policy_node(options)
            safety.start()
        except Exception as exc:
            safety.close()
            return runtime.startup_failed('gato-ros bringup', exc), None
        try:
            code = runtime.spin([policy], until=stop.is_set)
        finally:
            measured = safety.stop()
            safety.close()
    return code, report(policy, measured)


def report(policy: PolicyNode, safety: dict) -> dict:
    """What bringup measured: the safety controller's commands (rate, longest gap against the UR's 40 ms) and the
    policy's step latency."""
    commands = TickSummary.from_runs([safety.get('wall', [])], safety.get('rate_hz', 0.0), UR_COMMAND_TIMEOUT)
    return {'safety_commands': commands.to_dict(), 'policy_latency': LatencySummary.from_seconds(policy.latencies)
            .to_dict()}
