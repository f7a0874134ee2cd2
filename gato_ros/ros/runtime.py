"""The node runtime, below every node: rclpy start-up, the executor, spinning, signals, clean shutdown (where a
process runs, CPUs and SCHED_FIFO, is ros/placement.py).

rclpy's own signal handlers are off: SIGINT/SIGTERM only stop the spinning, so the context stays valid and the
safety controller can still publish its braking commands (its close()) before the process exits 0.

The executor is rclpy's EventsExecutor (C++, one thread). rclpy's Python executors rebuild their wait set in Python
on every wake-up: that held the GIL for ~75 % of the time it was held at all in a one-process bringup (py-spy,
docs/design.md "Processes and timing").
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time

import rclpy
from rclpy.experimental import EventsExecutor
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

SPIN_PERIOD = 0.05  # s: how often spinning looks at its stop condition (Ctrl-C, an episode's end) when idle


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


def make_executor():
    # EventsExecutor() enables faulthandler on sys.stderr, which fails when that is no file (pytest's capture, an
    # embedding application); its crash reports then go to the process's own stderr.
    with contextlib.redirect_stderr(sys.__stderr__):
        return EventsExecutor()


def spin_until(nodes: list[Node], until, timeout: float = float('inf')) -> bool:
    """Spin `nodes` in this thread until until() or `timeout` (wall s) and return until(); the nodes stay alive.

    Every callback runs in this thread (right too for a node whose EGL renderer is bound to one thread); work that
    takes long runs in a node's own thread (policy_node's step, sim_node's cameras). A callback's exception
    propagates. Spinning in the caller's thread means the signal handlers run between waits and no other thread is
    left inside the executor when it shuts down.
    """
    executor = make_executor()
    for node in nodes:
        executor.add_node(node)
    deadline = time.monotonic() + timeout
    try:
        while not until() and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=SPIN_PERIOD)
        return until()
    finally:
        executor.shutdown(timeout_sec=5.0)


def spin(nodes: list[Node], until=lambda: False) -> int:
    """Spin until SIGINT/SIGTERM, until() (or a callback raises), then stop the arm cleanly and shut rclpy down."""
    failure = None
    with stop_on_signals() as stop:
        try:
            spin_until(nodes, lambda: stop.is_set() or until())
        except Exception as exc:  # a callback raised: stop the arm, report, exit non-zero
            failure = exc
        finally:
            for node in nodes:
                close_node(node)
            for node in nodes:
                node.destroy_node()
            rclpy.try_shutdown()
    if failure is not None:
        print(f'gato_ros: a callback failed: {type(failure).__name__}: {failure}', file=sys.stderr)
        return 1
    return 0


def close_node(node: Node) -> None:
    """A node's close(), if it has one (the safety controller brakes to a hold and says with how many commands)."""
    close = getattr(node, 'close', None)
    sent = close() if close is not None else None
    if sent is not None:
        node.get_logger().info(f'shutdown: {sent} braking commands published')


def startup_failed(what: str, exc: BaseException) -> int:
    # Configuration errors carry their own explanation; a traceback would bury it.
    print(f'{what} failed to start: {type(exc).__name__}: {exc}', file=sys.stderr)
    rclpy.try_shutdown()
    return 1


def run_node_main(node_cls, args=None) -> int:
    """Entry point of one node process: `policy_node --ros-args -p robot:=sawyer ...`."""
    init(sys.argv if args is None else args)
    try:
        node = node_cls()
    except Exception as exc:
        return startup_failed(node_cls.__name__, exc)
    return spin([node])
