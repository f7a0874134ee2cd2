"""A test-side executor spinning its nodes on a background thread, so a test can drive and observe real topics."""

from __future__ import annotations

import threading

from rclpy.executors import SingleThreadedExecutor


class BackgroundSpinner:
    def __init__(self, context, nodes):
        self.executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            self.executor.add_node(node)
        self._running = True
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def add_node(self, node) -> None:
        self.executor.add_node(node)

    def _spin(self) -> None:
        while self._running:
            self.executor.spin_once(timeout_sec=0.05)

    def stop(self) -> None:
        self._running = False
        self._thread.join(timeout=5.0)
        self.executor.shutdown(timeout_sec=1.0)
