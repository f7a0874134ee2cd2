"""Build and run gato_ros nodes in one process: the node mains, `gato-ros bringup` and `gato-ros demo`.

rclpy's own signal handlers are off: SIGINT/SIGTERM only stop the executor, so the context stays valid and the
safety controller can still publish its braking commands (stop_arm) before the process exits 0.
"""

from __future__ import annotations

import signal
import sys
import threading
from dataclasses import dataclass

import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.signals import SignalHandlerOptions

from gato_ros.resources import resource_path

EXECUTOR_THREADS = 4  # safety tick, policy step, watchdog + input callbacks never wait on each other
# Python hands the GIL to a waiting thread only every switch interval (default 5 ms): with the policy's Python
# code in the same process, a 250 Hz tick (4 ms period) would wait that long. 0.5 ms keeps the tick on time.
GIL_SWITCH_INTERVAL = 0.0005


class _Executor(MultiThreadedExecutor):
    """MultiThreadedExecutor whose shutdown first waits for the callbacks still queued in its thread pool.
    Jazzy's (rclpy 7.1) destroys its guard condition at once, and a callback finishing later fails on it."""

    def shutdown(self, timeout_sec=None) -> bool:
        pool = getattr(self, '_executor', None)  # the ThreadPoolExecutor; private, hence the guard
        if pool is not None:
            pool.shutdown(wait=True)
        return super().shutdown(timeout_sec)


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
    args = ['gato-ros', '--ros-args',
            '--params-file', str(resource_path('config', 'policy.yaml')),
            '--params-file', str(resource_path('config', 'safety_controller.yaml')), *ros_args]
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def _overrides(**values) -> list[Parameter]:
    return [Parameter(name, value=value) for name, value in values.items() if value is not None]


def build_nodes(options: BringupOptions, policy=None) -> list[Node]:
    """policy_node + safety_controller_node for one arm (raises with a clear message on bad configuration)."""
    from gato_ros.ros.nodes.policy_node import PolicyNode
    from gato_ros.ros.nodes.safety_controller_node import SafetyControllerNode

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


def spin(nodes: list[Node]) -> int:
    """Spin until SIGINT/SIGTERM (or a callback raises), then stop the arm cleanly and shut rclpy down."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    executor = _Executor(num_threads=EXECUTOR_THREADS)
    for node in nodes:
        executor.add_node(node)
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    failure = None
    try:
        # Spin in this thread: the signal handler runs between waits (<= 0.1 s), and no other thread is left
        # inside the executor when it shuts down.
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.1)
    except Exception as exc:  # a callback raised: stop the arm, report, exit non-zero
        failure = exc
    finally:
        executor.shutdown(timeout_sec=5.0)
        for node in nodes:
            close = getattr(node, 'close', None)
            sent = close() if close is not None else None
            if sent is not None:
                node.get_logger().info(f'shutdown: {sent} braking commands published')
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    if failure is not None:
        print(f'gato_ros: a callback failed: {type(failure).__name__}: {failure}', file=sys.stderr)
        return 1
    return 0


def _startup_failed(what: str, exc: BaseException) -> int:
    # Configuration errors carry their own explanation; a traceback would bury it.
    print(f'{what} failed to start: {type(exc).__name__}: {exc}', file=sys.stderr)
    rclpy.try_shutdown()
    return 1


def run_node_main(node_cls, args=None) -> int:
    """Entry point of one node process: `policy_node --ros-args -p robot:=sawyer ...`."""
    rclpy.init(args=sys.argv if args is None else args, signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = node_cls()
    except Exception as exc:
        return _startup_failed(node_cls.__name__, exc)
    return spin([node])


def bringup(options: BringupOptions, ros_args=(), on_ready=None) -> int:
    """Both nodes in one process until Ctrl-C or SIGTERM. `on_ready(nodes)` runs before spinning;
    after shutdown, the safety node's command_stats() and the policy's latencies remain readable."""
    init(ros_args)
    try:
        nodes = build_nodes(options)
    except Exception as exc:
        return _startup_failed('gato-ros bringup', exc)
    if on_ready is not None:
        on_ready(nodes)
    return spin(nodes)
