"""One node in a child process of its own, so that no other node's Python (camera messages, a policy step, the
sim) competes with it for the GIL.

The child is spawned (never forked from a process that already runs rclpy), placed (placement.Placement: CPUs,
SCHED_FIFO) before rclpy starts, and then runs sessions on the parent's word: build the node with
`factory(**kwargs)`, spin it on the events executor until the parent says stop (or SIGINT/SIGTERM reaches the
child), close it (the safety controller brakes to a hold), send back `factory.measure(node)` and destroy it. The
factory object lives in the child across sessions, so what it loaded (a checkpoint) is loaded once. The child
exits with its parent (placement.exit_with_parent).
"""

from __future__ import annotations

import multiprocessing

from gato_ros.ros import placement, runtime

START_TIMEOUT = 120.0  # s: imports (torch), a checkpoint and a node's start-up on a busy machine
STOP_TIMEOUT = 30.0    # s: the safety controller's braking (shutdown_timeout) and the measurements' transfer


class NodeProcessError(RuntimeError):
    """The child could not place itself or build its node; the message is the child's one-line reason."""


class NodeProcess:
    """Parent side: `start(**kwargs)` builds the node in the child, `stop()` ends that session and returns its
    measurements, `close()` ends the child."""

    def __init__(self, name: str, factory, init_args, where: placement.Placement = placement.Placement()):
        self.name = name
        spawn = multiprocessing.get_context('spawn')
        self._conn, child = spawn.Pipe()
        self._process = spawn.Process(target=_child_main, name=name, daemon=True,
                                      args=(child, name, factory, list(init_args), where))
        self._process.start()
        child.close()
        self._running = False

    @property
    def pid(self) -> int:
        return self._process.pid

    def start(self, timeout: float = START_TIMEOUT, **kwargs) -> None:
        """Build the node in the child; returns once it spins. Raises NodeProcessError with the child's reason."""
        self._conn.send(('start', kwargs))
        kind, payload = self._receive(timeout, 'start')
        if kind == 'error':
            raise NodeProcessError(payload)
        self._running = True

    def stop(self, timeout: float = STOP_TIMEOUT) -> dict:
        """End the session: the child closes the node (braking) and returns its measurements."""
        if not self._running:
            return {}
        self._running = False
        try:
            self._conn.send(('stop', None))
        except (BrokenPipeError, OSError):  # a signal ended the child's session first: its report may be queued
            pass
        kind, payload = self._receive(timeout, 'stop')
        return payload if kind == 'done' else {}

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        try:
            self._conn.send(('exit', None))
        except (BrokenPipeError, OSError):
            pass
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(timeout)
        self._conn.close()

    def _receive(self, timeout: float, what: str):
        if not self._conn.poll(timeout):
            raise NodeProcessError(f'{self.name}: no answer to {what} within {timeout:g} s')
        try:
            return self._conn.recv()
        except EOFError:
            raise NodeProcessError(f'{self.name}: the process exited (code {self._process.exitcode}) '
                                   f'during {what}') from None


def _child_main(conn, name: str, factory, init_args: list, where: placement.Placement) -> None:
    placement.exit_with_parent()
    try:
        placement.place(where, name)
    except placement.PlacementError as exc:
        _refuse_sessions(conn, str(exc))
        return
    runtime.init(init_args)
    try:
        with runtime.stop_on_signals() as stop:
            while not stop.is_set():
                kind, kwargs = _receive_or_stop(conn, stop)
                if kind != 'start':
                    break
                try:
                    node = factory(**kwargs)
                except Exception as exc:  # configuration errors carry their own explanation
                    conn.send(('error', f'{name}: {type(exc).__name__}: {exc}'))
                    continue
                conn.send(('ready', None))
                conn.send(('done', _session(conn, node, factory, stop)))
    finally:
        import rclpy

        rclpy.try_shutdown()


def _session(conn, node, factory, stop) -> dict:
    """Spin until the parent's stop or a signal, then close (brake) and measure the node, and destroy it."""
    try:
        runtime.spin_until([node], lambda: stop.is_set() or conn.poll())
    finally:
        if conn.poll():
            conn.recv()  # the parent's stop
        runtime.close_node(node)
        measured = factory.measure(node)
        node.destroy_node()
    return measured


def _receive_or_stop(conn, stop):
    while not stop.is_set():
        if conn.poll(runtime.SPIN_PERIOD):
            try:
                return conn.recv()
            except EOFError:
                break
    return 'exit', None


def _refuse_sessions(conn, reason: str) -> None:
    """The process cannot run as asked: answer its start with the reason (one line for the user)."""
    try:
        if conn.poll(START_TIMEOUT) and conn.recv()[0] == 'start':
            conn.send(('error', reason))
    except (EOFError, OSError):
        pass
