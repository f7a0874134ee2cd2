"""Episodes on disk: one rosbag2 bag per episode, a directory holding `metadata.yaml` and one MCAP file.

A bag is what `ros2 bag record` writes for the same topics, written through the `rosbags` library (its ROS 2
Jazzy typestore supplies the message definitions and RIHS01 type hashes): storage `mcap` (profile 'ros2',
'ros2msg' schemas, CDR messages, zstd chunks), rosbag2 metadata version 9 with each topic's type, type hash and
offered QoS (reliable, keep-last 10: how sim_node and ros2_control's joint_state_broadcaster publish). Time
stamps (log time and header stamps) are wall-clock: the recording's start plus the simulation time. Per
control step:

  /joint_states                  sensor_msgs/msg/JointState   arm joints (controller order), then finger joints
  /camera/<name>/image_raw       sensor_msgs/msg/Image        rgb8, one topic per camera
  /gato/action                   std_msgs/msg/Float64MultiArray  the 5-D action taken at that step
  /gato/sim/blocks               geometry_msgs/msg/PoseArray  ground-truth block poses (simulation only;
                                 poses in BLOCK_ORDER). Training uses them as auxiliary targets; a policy
                                 never reads them

The episode's metadata (robot, task, seed, success, control rate, cameras, joints, steps, driver, time origin)
is the bag's `custom_data`, keys 'gato_ros.episode.<field>'. A bag is written as `<name>.partial/<name>/` and
moved to `<name>/` when complete, so an existing bag directory is a finished episode (this is what makes
recording resumable).

Episodes recorded before bags, single MCAP files `<name>.mcap` with a 'gato_ros.episode' metadata record and
log time = simulation time, are read as well (read_info, read_episode, load_episodes).
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import yaml
from mcap.reader import make_reader
from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

METADATA_NAME = 'gato_ros.episode'
FORMAT_VERSION = '2'     # 1: single MCAP file; 2: rosbag2 bag directory
JOINT_STATES_TOPIC = '/joint_states'
ACTION_TOPIC = '/gato/action'
BLOCKS_TOPIC = '/gato/sim/blocks'
BLOCK_ORDER = ('red', 'green', 'blue')  # pose order in /gato/sim/blocks (gato_ros.core.sim.BLOCK_COLORS)
BAG_VERSION = 9                          # rosbag2 metadata version (Jazzy)
_NO_TIME = QosTime(0, 0)
# Offered QoS of every recorded topic: reliable, keep-last 10, volatile (sim_node, joint_state_broadcaster).
RELIABLE_QOS = Qos(QosHistory.KEEP_LAST, 10, QosReliability.RELIABLE, QosDurability.VOLATILE, _NO_TIME, _NO_TIME,
                   QosLiveliness.AUTOMATIC, _NO_TIME, False)
_TYPES = {JOINT_STATES_TOPIC: 'sensor_msgs/msg/JointState', ACTION_TOPIC: 'std_msgs/msg/Float64MultiArray',
          BLOCKS_TOPIC: 'geometry_msgs/msg/PoseArray'}
IMAGE_TYPE = 'sensor_msgs/msg/Image'


def camera_topic(camera: str) -> str:
    return f'/camera/{camera}/image_raw'


@cache
def typestore():
    """ROS 2 Jazzy message types (definitions, CDR (de)serialisation, RIHS01 hashes) from `rosbags`."""
    return get_typestore(Stores.ROS2_JAZZY)


class EpisodeError(Exception):
    """An episode that cannot be used; the message names the file or bag and the problem."""


@dataclass(frozen=True)
class EpisodeInfo:
    robot: str                    # robot profile name, e.g. 'ur5e'
    task: tuple[str, str]         # (block placed on top, block underneath), e.g. ('red', 'blue')
    seed: int                     # simulation seed of the episode
    success: bool                 # the task's success condition held at the end
    control_hz: float             # control (action) rate
    cameras: tuple[str, ...]      # camera names, in recording order
    joint_names: tuple[str, ...]  # arm joints, controller order
    finger_joint_names: tuple[str, ...]  # gripper finger joints (after the arm joints in /joint_states)
    steps: int                    # number of control steps
    driver: str = 'expert'        # who moved the arm: 'expert', 'policy' (DAgger: actions are expert labels) or
                                  # 'imported' (a robot's bag, gato-ros import-bag: actions from its action topic)

    def to_metadata(self) -> dict[str, str]:
        return {'format_version': FORMAT_VERSION, 'robot': self.robot, 'task': ','.join(self.task),
                'seed': str(self.seed), 'success': str(self.success).lower(),
                'control_hz': repr(float(self.control_hz)), 'cameras': ','.join(self.cameras),
                'joint_names': ','.join(self.joint_names),
                'finger_joint_names': ','.join(self.finger_joint_names), 'steps': str(self.steps),
                'driver': self.driver}

    @classmethod
    def from_metadata(cls, meta: dict[str, str]) -> 'EpisodeInfo':
        task = tuple(meta['task'].split(','))
        if len(task) != 2:
            raise ValueError(f"task must be 'top,bottom', got {meta['task']!r}")
        return cls(robot=meta['robot'], task=task, seed=int(meta['seed']), success=meta['success'] == 'true',
                   control_hz=float(meta['control_hz']), cameras=tuple(meta['cameras'].split(',')),
                   joint_names=tuple(meta['joint_names'].split(',')),
                   finger_joint_names=tuple(meta['finger_joint_names'].split(',')), steps=int(meta['steps']),
                   driver=meta.get('driver', 'expert'))


@dataclass
class Episode:
    info: EpisodeInfo
    time: np.ndarray                  # (T,) seconds since the episode started (simulation time), per observation
    q: np.ndarray                     # (T, n) arm joint positions (rad)
    qd: np.ndarray                    # (T, n) arm joint velocities (rad/s)
    finger_q: np.ndarray              # (T, k) finger joint positions (m; URDF lower limit = closed)
    images: dict[str, np.ndarray]     # camera -> (T, H, W, 3) uint8
    actions: np.ndarray               # (T, ACTION_DIM) in [-1, 1], taken after observation t
    blocks: np.ndarray | None = None  # (T, len(BLOCK_ORDER), 7) [x, y, z, qw, qx, qy, qz] ground truth, or None
    name: str = ''                    # the bag's (or file's) name in its folder, '' for one made in memory

    def __len__(self) -> int:
        return len(self.time)


def _header(ns: int, frame_id: str):
    types = typestore().types
    return types['std_msgs/msg/Header'](stamp=types['builtin_interfaces/msg/Time'](
        sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=frame_id)


class EpisodeWriter:
    """Streams one episode to the bag directory `path` (via `path.partial/`); `close(success)` makes it complete.
    Time stamps are time_origin_ns (default: now) plus the seconds passed to add()."""

    def __init__(self, path, robot: str, task, seed: int, control_hz: float, cameras, joint_names,
                 finger_joint_names, driver: str = 'expert', time_origin_ns: int | None = None):
        self.path = Path(path)
        self._partial = self.path.with_name(self.path.name + '.partial')
        self._meta = dict(robot=robot, task=tuple(task), seed=int(seed), control_hz=float(control_hz),
                          cameras=tuple(cameras), joint_names=tuple(joint_names),
                          finger_joint_names=tuple(finger_joint_names), driver=driver)
        self._origin = time.time_ns() if time_origin_ns is None else int(time_origin_ns)
        shutil.rmtree(self._partial, ignore_errors=True)   # left by an interrupted recording
        self._bag = Writer(self._partial / self.path.name, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._bag.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)   # zstd chunks, as rosbag2
        self._bag.open()
        self._connections = {topic: self._bag.add_connection(topic, msgtype, typestore=typestore(),
                                                             offered_qos_profiles=[RELIABLE_QOS])
                             for topic, msgtype in {**{camera_topic(c): IMAGE_TYPE for c in self._meta['cameras']},
                                                    JOINT_STATES_TOPIC: _TYPES[JOINT_STATES_TOPIC],
                                                    ACTION_TOPIC: _TYPES[ACTION_TOPIC]}.items()}
        self._steps = 0
        self._open = True

    def _write(self, topic: str, ns: int, message) -> None:
        if topic not in self._connections:   # the optional block poses: a topic once the first pose arrives
            self._connections[topic] = self._bag.add_connection(topic, message.__msgtype__, typestore=typestore(),
                                                                offered_qos_profiles=[RELIABLE_QOS])
        self._bag.write(self._connections[topic], ns, typestore().serialize_cdr(message, message.__msgtype__))

    def add(self, t: float, positions, velocities, images: dict, action, blocks=None) -> None:
        """One control step: joint positions/velocities (arm then fingers) and images at time t (s), the action
        chosen from them, and (simulation) the block poses: colour -> (position (3,), quaternion w,x,y,z)."""
        types = typestore().types
        ns = self._origin + int(round(t * 1e9))
        names = [*self._meta['joint_names'], *self._meta['finger_joint_names']]
        if len(positions) != len(names) or len(velocities) != len(names):
            raise ValueError(f'joint state: {len(positions)} positions / {len(velocities)} velocities for '
                             f'{len(names)} joints {names}')
        self._write(JOINT_STATES_TOPIC, ns, types[_TYPES[JOINT_STATES_TOPIC]](
            header=_header(ns, ''), name=names, position=np.asarray(positions, np.float64),
            velocity=np.asarray(velocities, np.float64), effort=np.zeros(0, np.float64)))
        for camera in self._meta['cameras']:
            img = np.ascontiguousarray(images[camera], dtype=np.uint8)
            if img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f'camera {camera!r}: expected (H, W, 3) uint8 RGB, got shape {img.shape}')
            self._write(camera_topic(camera), ns, types[IMAGE_TYPE](
                header=_header(ns, camera), height=img.shape[0], width=img.shape[1], encoding='rgb8',
                is_bigendian=0, step=img.shape[1] * 3, data=img.reshape(-1)))
        action = np.asarray(action, np.float64)
        dim = types['std_msgs/msg/MultiArrayDimension'](label='action', size=len(action), stride=len(action))
        self._write(ACTION_TOPIC, ns, types[_TYPES[ACTION_TOPIC]](
            layout=types['std_msgs/msg/MultiArrayLayout'](dim=[dim], data_offset=0), data=action))
        if blocks is not None:
            pose, point, quaternion = (types[f'geometry_msgs/msg/{n}'] for n in ('Pose', 'Point', 'Quaternion'))
            poses = []
            for color in BLOCK_ORDER:
                (x, y, z), (qw, qx, qy, qz) = blocks[color]
                poses.append(pose(position=point(x=float(x), y=float(y), z=float(z)),
                                  orientation=quaternion(x=float(qx), y=float(qy), z=float(qz), w=float(qw))))
            self._write(BLOCKS_TOPIC, ns, types[_TYPES[BLOCKS_TOPIC]](header=_header(ns, 'base_link'), poses=poses))
        self._steps += 1

    def close(self, success: bool) -> EpisodeInfo:
        info = EpisodeInfo(success=bool(success), steps=self._steps, **self._meta)
        for key, value in {**info.to_metadata(), 'time_origin_ns': str(self._origin)}.items():
            self._bag.set_custom_data(f'{METADATA_NAME}.{key}', value)
        self._bag.close()
        self._open = False
        os.replace(self._partial / self.path.name, self.path)
        self._partial.rmdir()
        return info

    def abort(self) -> None:
        self._bag.abort()
        self._open = False
        shutil.rmtree(self._partial, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and self._open:
            self.abort()


def _bag_metadata(path: Path) -> dict[str, str]:
    """The 'gato_ros.episode.' fields of a bag's custom_data (metadata.yaml); EpisodeError when there are none."""
    try:
        info = yaml.safe_load((path / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    except FileNotFoundError:
        raise EpisodeError(f'{path}: not a rosbag2 bag (no metadata.yaml)') from None
    except (OSError, yaml.YAMLError, KeyError, TypeError) as e:
        raise EpisodeError(f'{path}: unreadable metadata.yaml ({type(e).__name__}: {e})') from e
    prefix = METADATA_NAME + '.'
    fields = {k[len(prefix):]: str(v) for k, v in (info.get('custom_data') or {}).items() if k.startswith(prefix)}
    if not fields:
        raise EpisodeError(f'{path}: a rosbag2 bag but not a gato_ros episode (no {prefix}* custom_data); '
                           f'turn a recorded bag into episodes with `gato-ros import-bag`')
    return fields


def _legacy_metadata(path: Path) -> dict[str, str]:
    """The 'gato_ros.episode' metadata record of a single-file episode (cheap: no chunk is decompressed)."""
    try:
        with open(path, 'rb') as f:
            for record in make_reader(f).iter_metadata():
                if record.name == METADATA_NAME:
                    return dict(record.metadata)
    except Exception as e:  # mcap raises several types for truncated or garbled files
        raise EpisodeError(f'{path}: not a complete MCAP episode ({type(e).__name__}: {e})') from e
    raise EpisodeError(f'{path}: no {METADATA_NAME!r} metadata record')


def _metadata(path: Path) -> dict[str, str]:
    return _bag_metadata(path) if path.is_dir() else _legacy_metadata(path)


def read_info(path) -> EpisodeInfo:
    """The episode's metadata (cheap: from metadata.yaml, or a single file's summary section)."""
    path = Path(path)
    meta = _metadata(path)
    try:
        return EpisodeInfo.from_metadata(meta)
    except (KeyError, ValueError) as e:
        raise EpisodeError(f'{path}: bad episode metadata ({type(e).__name__}: {e})') from e


def read_messages(path, topics) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(log time ns, decoded message)] of a bag directory or MCAP file, for the given topics, through
    `rosbags` (Jazzy types); EpisodeError naming the path when it cannot be read."""
    msgs: dict[str, list] = {topic: [] for topic in topics}
    try:
        with Reader(Path(path)) as reader:
            connections = [c for c in reader.connections if c.topic in msgs]
            for connection, ns, raw in reader.messages(connections=connections):
                msgs[connection.topic].append((ns, typestore().deserialize_cdr(raw, connection.msgtype)))
    except Exception as e:   # rosbags raises several types for truncated, garbled or foreign files
        raise EpisodeError(f'{path}: cannot decode messages ({type(e).__name__}: {e})') from e
    return msgs


def read_episode(path) -> Episode:
    """Decodes a whole episode; raises EpisodeError naming the bag or file when it is corrupt or incomplete."""
    path = Path(path)
    info = read_info(path)
    origin = int(_metadata(path).get('time_origin_ns', '0'))   # single-file episodes: log time = sim time
    topics = [JOINT_STATES_TOPIC, ACTION_TOPIC, BLOCKS_TOPIC] + [camera_topic(c) for c in info.cameras]
    msgs = read_messages(path, topics)
    block_msgs = msgs.pop(BLOCKS_TOPIC)  # optional: only simulated episodes have ground truth
    counts = {topic: len(v) for topic, v in msgs.items()}
    if block_msgs and len(block_msgs) != info.steps:
        counts[BLOCKS_TOPIC] = len(block_msgs)
    if set(counts.values()) != {info.steps}:
        raise EpisodeError(f'{path}: expected {info.steps} messages per topic, found {counts}')
    n, expected = len(info.joint_names), [*info.joint_names, *info.finger_joint_names]
    joints = [m for _, m in msgs[JOINT_STATES_TOPIC]]
    if joints and list(joints[0].name) != expected:
        raise EpisodeError(f'{path}: /joint_states names {list(joints[0].name)}, expected {expected}')
    position = np.array([m.position for m in joints], dtype=np.float64).reshape(info.steps, len(expected))
    velocity = np.array([m.velocity for m in joints], dtype=np.float64).reshape(info.steps, len(expected))
    actions = np.array([m.data for _, m in msgs[ACTION_TOPIC]], np.float32)
    if not (np.isfinite(actions).all() and np.abs(actions).max(initial=0.0) <= 1.0 + 1e-6):
        raise EpisodeError(f'{path}: /gato/action holds values outside [-1, 1] or non-finite values')
    images = {}
    for camera in info.cameras:
        frames = [m for _, m in msgs[camera_topic(camera)]]
        if frames and frames[0].encoding != 'rgb8':
            raise EpisodeError(f'{path}: camera {camera!r} has encoding {frames[0].encoding!r}, expected rgb8')
        images[camera] = np.stack([np.asarray(m.data, np.uint8).reshape(m.height, m.width, 3)
                                   for m in frames]) if frames else np.zeros((0, 0, 0, 3), np.uint8)
    blocks = np.array([[[p.position.x, p.position.y, p.position.z, p.orientation.w, p.orientation.x,
                         p.orientation.y, p.orientation.z] for p in m.poses] for _, m in block_msgs],
                      np.float64).reshape(-1, len(BLOCK_ORDER), 7) if block_msgs else None
    stamps = np.array([t for t, _ in msgs[JOINT_STATES_TOPIC]], np.int64) - origin
    return Episode(info=info, time=stamps * 1e-9, q=position[:, :n], qd=velocity[:, :n], finger_q=position[:, n:],
                   images=images, actions=np.clip(actions, -1.0, 1.0), blocks=blocks, name=path.name)


def is_episode_path(path: Path) -> bool:
    """A finished episode's place: a bag directory (metadata.yaml inside) or a single-file `*.mcap` episode."""
    return (path / 'metadata.yaml').is_file() if path.is_dir() else path.suffix == '.mcap' and path.is_file()


def episode_paths(directory) -> list[Path]:
    """The episodes in `directory`, bags and single files, sorted by name (`*.partial` recordings left out)."""
    return sorted(p for p in Path(directory).iterdir() if is_episode_path(p))


def load_episodes(directory, only_successful: bool = False) -> list[Episode]:
    """Every readable episode in `directory` (sorted by name); corrupt ones are skipped with a warning.
    only_successful drops failed expert-driven episodes; policy-driven (DAgger) ones are kept, their actions
    are the expert's labels whatever the rollout did."""
    episodes = []
    for path in episode_paths(directory):
        try:
            episode = read_episode(path)
        except EpisodeError as e:
            warnings.warn(f'skipping episode: {e}', stacklevel=2)
            continue
        if episode.info.success or episode.info.driver == 'policy' or not only_successful:
            episodes.append(episode)
    return episodes
