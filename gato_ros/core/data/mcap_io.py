"""Episodes on disk: one MCAP file per episode in rosbag2's layout.

A file is what `ros2 bag record` would have written for the same topics: profile 'ros2', schemas in
'ros2msg' text (the real message definitions, dependencies appended the way rosbag2 does), CDR
messages, zstd chunks, log time = simulation time. Per control step:

  /joint_states                  sensor_msgs/msg/JointState   arm joints (controller order), then finger joints
  /camera/<name>/image_raw       sensor_msgs/msg/Image        rgb8, one topic per camera
  /gato/action                   std_msgs/msg/Float64MultiArray  the 5-D action taken at that step
  /gato/sim/blocks               geometry_msgs/msg/PoseArray  ground-truth block poses (simulation only;
                                 poses in BLOCK_ORDER). Training uses them as auxiliary targets; a policy
                                 never reads them

plus one metadata record 'gato_ros.episode' (robot, task, seed, success, control rate, cameras, steps).
Files are written under a temporary name and renamed when complete, so an existing file with its
metadata is a finished episode (this is what makes recording resumable).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from mcap.reader import make_reader
from mcap.writer import CompressionType
from mcap_ros2.decoder import DecoderFactory
from mcap_ros2.writer import Writer

METADATA_NAME = 'gato_ros.episode'
FORMAT_VERSION = '1'
JOINT_STATES_TOPIC = '/joint_states'
ACTION_TOPIC = '/gato/action'
BLOCKS_TOPIC = '/gato/sim/blocks'
BLOCK_ORDER = ('red', 'green', 'blue')  # pose order in /gato/sim/blocks (gato_ros.core.sim.BLOCK_COLORS)


def camera_topic(camera: str) -> str:
    return f'/camera/{camera}/image_raw'


# Message definitions of ROS 2 Jazzy (comments stripped; test_data checks them against the installed
# .msg files), concatenated with their dependencies in rosbag2's 'ros2msg' schema format.
_SEP = '=' * 80
_TIME = 'int32 sec\nuint32 nanosec\n'
_HEADER = 'builtin_interfaces/Time stamp\nstring frame_id\n'
MSG_DEFINITIONS = {
    'sensor_msgs/msg/JointState': ('std_msgs/Header header\nstring[] name\nfloat64[] position\n'
                                   'float64[] velocity\nfloat64[] effort\n'),
    'sensor_msgs/msg/Image': ('std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n'
                              'uint8 is_bigendian\nuint32 step\nuint8[] data\n'),
    'std_msgs/msg/Float64MultiArray': 'MultiArrayLayout layout\nfloat64[] data\n',
    'std_msgs/msg/MultiArrayLayout': 'MultiArrayDimension[] dim\nuint32 data_offset\n',
    'std_msgs/msg/MultiArrayDimension': 'string label\nuint32 size\nuint32 stride\n',
    'std_msgs/msg/Header': _HEADER,
    'builtin_interfaces/msg/Time': _TIME,
    'geometry_msgs/msg/PoseArray': 'std_msgs/Header header\nPose[] poses\n',
    'geometry_msgs/msg/Pose': 'Point position\nQuaternion orientation\n',
    'geometry_msgs/msg/Point': 'float64 x\nfloat64 y\nfloat64 z\n',
    'geometry_msgs/msg/Quaternion': 'float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1\n',
}
_DEPENDENCIES = {
    'sensor_msgs/msg/JointState': ('std_msgs/msg/Header', 'builtin_interfaces/msg/Time'),
    'sensor_msgs/msg/Image': ('std_msgs/msg/Header', 'builtin_interfaces/msg/Time'),
    'std_msgs/msg/Float64MultiArray': ('std_msgs/msg/MultiArrayLayout', 'std_msgs/msg/MultiArrayDimension'),
    'geometry_msgs/msg/PoseArray': ('std_msgs/msg/Header', 'builtin_interfaces/msg/Time', 'geometry_msgs/msg/Pose',
                                    'geometry_msgs/msg/Point', 'geometry_msgs/msg/Quaternion'),
}


def schema_text(datatype: str) -> str:
    """The 'ros2msg' schema of a message type: its definition, then 'MSG: pkg/Name' blocks."""
    parts = [MSG_DEFINITIONS[datatype]]
    for dep in _DEPENDENCIES.get(datatype, ()):
        package, _, name = dep.split('/')
        parts.append(f'{_SEP}\nMSG: {package}/{name}\n{MSG_DEFINITIONS[dep]}')
    return '\n'.join(parts)


class EpisodeError(Exception):
    """An episode file that cannot be used; the message names the file and the problem."""


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
    driver: str = 'expert'        # who moved the arm: 'expert', or 'policy' (DAgger: actions are expert labels)

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
    time: np.ndarray                  # (T,) seconds, simulation time of each observation
    q: np.ndarray                     # (T, n) arm joint positions (rad)
    qd: np.ndarray                    # (T, n) arm joint velocities (rad/s)
    finger_q: np.ndarray              # (T, k) finger joint positions (m; URDF lower limit = closed)
    images: dict[str, np.ndarray]     # camera -> (T, H, W, 3) uint8
    actions: np.ndarray               # (T, ACTION_DIM) in [-1, 1], taken after observation t
    blocks: np.ndarray | None = None  # (T, len(BLOCK_ORDER), 7) [x, y, z, qw, qx, qy, qz] ground truth, or None

    def __len__(self) -> int:
        return len(self.time)


def _stamp(t: float) -> dict:
    ns = int(round(t * 1e9))
    return {'sec': ns // 1_000_000_000, 'nanosec': ns % 1_000_000_000}


class EpisodeWriter:
    """Streams one episode to `path` (via `path.partial`); `close(success)` makes it complete."""

    def __init__(self, path, robot: str, task, seed: int, control_hz: float, cameras, joint_names,
                 finger_joint_names, driver: str = 'expert'):
        self.path = Path(path)
        self._partial = self.path.with_name(self.path.name + '.partial')
        self._meta = dict(robot=robot, task=tuple(task), seed=int(seed), control_hz=float(control_hz),
                          cameras=tuple(cameras), joint_names=tuple(joint_names),
                          finger_joint_names=tuple(finger_joint_names), driver=driver)
        self._file = open(self._partial, 'wb')
        self._writer = Writer(self._file, compression=CompressionType.ZSTD)
        self._schemas = {name: self._writer.register_msgdef(name, schema_text(name))
                         for name in ('sensor_msgs/msg/JointState', 'sensor_msgs/msg/Image',
                                      'std_msgs/msg/Float64MultiArray', 'geometry_msgs/msg/PoseArray')}
        self._steps = 0

    def add(self, t: float, positions, velocities, images: dict, action, blocks=None) -> None:
        """One control step: joint positions/velocities (arm then fingers) and images at time t, the action
        chosen from them, and (simulation) the block poses: colour -> (position (3,), quaternion w,x,y,z)."""
        ns, header = int(round(t * 1e9)), {'stamp': _stamp(t), 'frame_id': ''}
        names = [*self._meta['joint_names'], *self._meta['finger_joint_names']]
        if len(positions) != len(names) or len(velocities) != len(names):
            raise ValueError(f'joint state: {len(positions)} positions / {len(velocities)} velocities for '
                             f'{len(names)} joints {names}')
        self._writer.write_message(JOINT_STATES_TOPIC, self._schemas['sensor_msgs/msg/JointState'], {
            'header': header, 'name': names, 'position': [float(v) for v in positions],
            'velocity': [float(v) for v in velocities], 'effort': []}, log_time=ns, sequence=self._steps)
        for camera in self._meta['cameras']:
            img = np.ascontiguousarray(images[camera], dtype=np.uint8)
            if img.ndim != 3 or img.shape[2] != 3:
                raise ValueError(f'camera {camera!r}: expected (H, W, 3) uint8 RGB, got shape {img.shape}')
            self._writer.write_message(camera_topic(camera), self._schemas['sensor_msgs/msg/Image'], {
                'header': {'stamp': _stamp(t), 'frame_id': camera}, 'height': img.shape[0],
                'width': img.shape[1], 'encoding': 'rgb8', 'is_bigendian': 0, 'step': img.shape[1] * 3,
                'data': img.tobytes()}, log_time=ns, sequence=self._steps)
        action = [float(v) for v in action]
        self._writer.write_message(ACTION_TOPIC, self._schemas['std_msgs/msg/Float64MultiArray'], {
            'layout': {'dim': [{'label': 'action', 'size': len(action), 'stride': len(action)}],
                       'data_offset': 0}, 'data': action}, log_time=ns, sequence=self._steps)
        if blocks is not None:
            poses = []
            for color in BLOCK_ORDER:
                (x, y, z), (qw, qx, qy, qz) = blocks[color]
                poses.append({'position': {'x': float(x), 'y': float(y), 'z': float(z)},
                              'orientation': {'x': float(qx), 'y': float(qy), 'z': float(qz), 'w': float(qw)}})
            self._writer.write_message(BLOCKS_TOPIC, self._schemas['geometry_msgs/msg/PoseArray'], {
                'header': {'stamp': _stamp(t), 'frame_id': 'base_link'}, 'poses': poses},
                log_time=ns, sequence=self._steps)
        self._steps += 1

    def close(self, success: bool) -> EpisodeInfo:
        info = EpisodeInfo(success=bool(success), steps=self._steps, **self._meta)
        self._writer.add_metadata(METADATA_NAME, info.to_metadata())
        self._writer.finish()
        self._file.close()
        os.replace(self._partial, self.path)
        return info

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not self._file.closed:
            self.abort()


def read_info(path) -> EpisodeInfo:
    """The episode's metadata, from the file's summary section (cheap: no chunk is decompressed)."""
    path = Path(path)
    try:
        with open(path, 'rb') as f:
            reader = make_reader(f)
            for record in reader.iter_metadata():
                if record.name == METADATA_NAME:
                    return EpisodeInfo.from_metadata(dict(record.metadata))
    except EpisodeError:
        raise
    except Exception as e:  # mcap raises several types for truncated or garbled files
        raise EpisodeError(f'{path}: not a complete MCAP episode ({type(e).__name__}: {e})') from e
    raise EpisodeError(f'{path}: no {METADATA_NAME!r} metadata record')


def read_episode(path) -> Episode:
    """Decodes a whole episode; raises EpisodeError naming the file when it is corrupt or incomplete."""
    path = Path(path)
    info = read_info(path)
    topics = [JOINT_STATES_TOPIC, ACTION_TOPIC, BLOCKS_TOPIC] + [camera_topic(c) for c in info.cameras]
    msgs: dict[str, list] = {topic: [] for topic in topics}
    try:
        with open(path, 'rb') as f:
            reader = make_reader(f, decoder_factories=[DecoderFactory()])
            for _, channel, message, ros_msg in reader.iter_decoded_messages(topics=topics):
                msgs[channel.topic].append((message.log_time, ros_msg))
    except Exception as e:
        raise EpisodeError(f'{path}: cannot decode messages ({type(e).__name__}: {e})') from e
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
        images[camera] = np.stack([np.frombuffer(bytes(m.data), np.uint8).reshape(m.height, m.width, 3)
                                   for m in frames]) if frames else np.zeros((0, 0, 0, 3), np.uint8)
    blocks = np.array([[[p.position.x, p.position.y, p.position.z, p.orientation.w, p.orientation.x,
                         p.orientation.y, p.orientation.z] for p in m.poses] for _, m in block_msgs],
                      np.float64).reshape(-1, len(BLOCK_ORDER), 7) if block_msgs else None
    return Episode(info=info, time=np.array([t for t, _ in msgs[JOINT_STATES_TOPIC]], np.float64) * 1e-9,
                   q=position[:, :n], qd=velocity[:, :n], finger_q=position[:, n:], images=images,
                   actions=np.clip(actions, -1.0, 1.0), blocks=blocks)


def episode_paths(directory) -> list[Path]:
    return sorted(Path(directory).glob('*.mcap'))


def load_episodes(directory, only_successful: bool = False) -> list[Episode]:
    """Every readable episode in `directory` (sorted by name); corrupt files are skipped with a warning.
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
