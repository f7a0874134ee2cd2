"""The node runtime, below every node: rclpy start-up, the executor, spinning, signals, clean shutdown.

rclpy's own signal handlers are off: SIGINT/SIGTERM only stop the spinning, so the context stays valid and the
safety controller can still publish its braking commands (its close()) before the process exits 0.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

EXECUTOR_THREADS = 4  # safety tick, policy step, watchdog + input callbacks never wait on each other
# Python hands the GIL to a waiting thread only every switch interval (default 5 ms): with the policy's Python
# code in the same process, a 250 Hz tick (4 ms period) would wait that long. 0.5 ms keeps the tick on time.
GIL_SWITCH_INTERVAL = 0.0005
SPIN_PERIOD = 0.05  # s: how often spinning looks at its stop condition (Ctrl-C, an episode's end) when idle


class _Executor(MultiThreadedExecutor):
    """MultiThreadedExecutor whose shutdown first waits for the callbacks still queued in its thread pool.
    Jazzy's (rclpy 7.1) destroys its guard condition at once, and a callback finishing later fails on it."""

    def shutdown(self, timeout_sec=None) -> bool:
        pool = getattr(self, '_executor', None)  # the ThreadPoolExecutor; private, hence the guard
        if pool is not None:
            pool.shutdown(wait=True)
        return super().shutdown(timeout_sec)


def init(args) -> None:
    """rclpy.init without rclpy's signal handlers (see the module docstring)."""
    rclpy.init(args=list(args), signal_handler_options=SignalHandlerOptions.NO)


@contextlib.contextmanager
def stop_on_signals():
    """Within the block SIGINT/SIGTERM set the yielded Event instead of raising; the old handlers come back."""
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def spin_until(nodes: list[Node], until, timeout: float = float('inf'), threads: int = EXECUTOR_THREADS) -> bool:
    """Spin `nodes` in this thread until until() or `timeout` (wall s) and return until(); the nodes stay alive.

    threads=1 runs every callback in this thread (a node whose EGL renderer is bound to one thread); more
    threads run them in a pool. A callback's exception propagates. Spinning in the caller's thread means the
    signal handlers run between waits and no other thread is left inside the executor when it shuts down.
    """
    if threads == 1:
        executor = SingleThreadedExecutor()
    else:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
        executor = _Executor(num_threads=threads)
    for node in nodes:
        executor.add_node(node)
    deadline = time.monotonic() + timeout
    try:
        while not until() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=SPIN_PERIOD)
        return until()
    finally:
        executor.shutdown(timeout_sec=5.0)


def spin(nodes: list[Node], threads: int = EXECUTOR_THREADS) -> int:
    """Spin until SIGINT/SIGTERM (or a callback raises), then stop the arm cleanly and shut rclpy down."""
    failure = None
    with stop_on_signals() as stop:
        try:
            spin_until(nodes, stop.is_set, threads=threads)
        except Exception as exc:  # a callback raised: stop the arm, report, exit non-zero
            failure = exc
        finally:
            for node in nodes:
                close = getattr(node, 'close', None)
                sent = close() if close is not None else None
                if sent is not None:
                    node.get_logger().info(f'shutdown: {sent} braking commands published')
            for node in nodes:
                node.destroy_node()
            rclpy.try_shutdown()
    if failure is not None:
        print(f'gato_ros: a callback failed: {type(failure).__name__}: {failure}', file=sys.stderr)
        return 1
    return 0


def startup_failed(what: str, exc: BaseException) -> int:
    # Configuration errors carry their own explanation; a traceback would bury it.
    print(f'{what} failed to start: {type(exc).__name__}: {exc}', file=sys.stderr)
    rclpy.try_shutdown()
    return 1


def run_node_main(node_cls, args=None, threads: int = EXECUTOR_THREADS) -> int:
    """Entry point of one node process: `policy_node --ros-args -p robot:=sawyer ...`."""
    init(sys.argv if args is None else args)
    try:
        node = node_cls()
    except Exception as exc:
        return startup_failed(node_cls.__name__, exc)
    return spin([node], threads)
