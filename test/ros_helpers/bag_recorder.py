"""A small `ros2 bag record` for tests (the ros2 CLI is not installed here): an rclpy node subscribes raw (CDR
bytes as they arrive) to the given topics with each publisher's reliability and durability, and writes them
through `rosbags` into a rosbag2 bag with MCAP storage: receive time as log time, the publisher's type hash
and offered QoS in the metadata, as rosbag2 does."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from rclpy.node import Node
from rclpy.qos import QoSProfile
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore


def _qos_time(duration) -> QosTime:
    return QosTime(*divmod(duration.nanoseconds, 1_000_000_000))


def to_bag_qos(profile: QoSProfile) -> Qos:
    return Qos(QosHistory[profile.history.name], profile.depth, QosReliability[profile.reliability.name],
               QosDurability[profile.durability.name], _qos_time(profile.deadline), _qos_time(profile.lifespan),
               QosLiveliness[profile.liveliness.name], _qos_time(profile.liveliness_lease_duration),
               profile.avoid_ros_namespace_conventions)


class BagRecorder(Node):
    def __init__(self, context, bag: Path, topics: dict[str, type], discovery_timeout: float = 10.0):
        """topics: topic -> its rclpy message class. Waits for a publisher on every topic, then subscribes."""
        super().__init__('test_bag_recorder', context=context)
        self.typestore = get_typestore(Stores.ROS2_JAZZY)
        self.writer = Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP)
        self.writer.open()
        self.lock = threading.Lock()
        self.counts = dict.fromkeys(topics, 0)
        self.type_hashes: dict[str, str] = {}
        deadline = time.monotonic() + discovery_timeout
        for topic, msg_class in topics.items():
            while not (publishers := self.get_publishers_info_by_topic(topic)):
                if time.monotonic() > deadline:
                    raise TimeoutError(f'no publisher on {topic} within {discovery_timeout} s')
                time.sleep(0.05)
            offered = publishers[0]
            digest = offered.topic_type_hash
            self.type_hashes[topic] = f'RIHS{digest.version:02d}_{digest.value.hex()}'
            msgdef, _ = self.typestore.generate_msgdef(offered.topic_type, ros_version=2)
            connection = self.writer.add_connection(topic, offered.topic_type, msgdef=msgdef,
                                                    rihs01=self.type_hashes[topic],
                                                    offered_qos_profiles=[to_bag_qos(offered.qos_profile)])
            qos = QoSProfile(depth=100, reliability=offered.qos_profile.reliability,
                             durability=offered.qos_profile.durability)
            self.create_subscription(msg_class, topic, self._writer_for(topic, connection), qos, raw=True)

    def _writer_for(self, topic, connection):
        def write(data: bytes) -> None:
            with self.lock:
                self.writer.write(connection, self.get_clock().now().nanoseconds, data)
                self.counts[topic] += 1
        return write

    def wait_for(self, topic: str, count: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self.counts[topic] < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f'{topic}: {self.counts[topic]} of {count} messages recorded in {timeout} s')
            time.sleep(0.005)

    def close(self) -> None:
        with self.lock:
            self.writer.close()
        self.destroy_node()
