"""A bag recorded on a robot (`ros2 bag record`: camera Image or CompressedImage topics, /joint_states and the
5-D action topic) -> one training episode (gato-ros import-bag).

Each message on the action topic is one control step: its observation is the newest joint state and the newest
frame of every camera received at or before it (bag receive time); actions that come before every input has
been heard from are dropped. Joints are matched by name to the robot profile (arm joints, then finger joints;
other joints are ignored), images are converted to RGB and resized to the training size, exactly as policy_node
does live (gato_ros.core.sensors). The episode is written like a recorded one (EpisodeWriter), its time origin
the first step's receive time.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..robots import ACTION_DIM, load_profile
from ..sensors import camera_to_rgb, joint_state_to_arrays
from ..tokenizer.image import PATCH_SIZE
from .mcap_io import (ACTION_TOPIC, IMAGE_TYPE, JOINT_STATES_TOPIC, EpisodeError, EpisodeInfo, EpisodeWriter,
                      camera_topic, read_messages)

COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
_TOPIC_TYPES = {'joint states': ('sensor_msgs/msg/JointState',), 'action': ('std_msgs/msg/Float64MultiArray',),
                'camera': (IMAGE_TYPE, COMPRESSED_TYPE)}


@dataclass(frozen=True)
class BagImportConfig:
    robot: str = 'ur5e'                     # robot profile (name or YAML path) whose joints the bag must hold
    task: tuple[str, str] = ('red', 'blue')  # (block on top, block underneath) the demonstration performs
    cameras: dict[str, str] = field(default_factory=lambda: {c: camera_topic(c) for c in ('front_left',
                                                                                         'front_right')})
    # ^ camera name -> its Image or CompressedImage topic in the bag; non-empty
    joint_states_topic: str = JOINT_STATES_TOPIC  # sensor_msgs/JointState, arm and finger joints by name
    action_topic: str = ACTION_TOPIC        # std_msgs/Float64MultiArray, ACTION_DIM values in [-1, 1] per step
    image_size: int = 64                    # training image size (px), a positive multiple of the 16 px patch
    control_hz: float | None = None         # action rate written into the episode (None: measured in the bag), > 0
    success: bool = True                    # whether the demonstration achieved the task
    seed: int = 0                           # episode seed (a label: nothing is simulated), >= 0

    def __post_init__(self):
        if not self.cameras:
            raise ValueError('BagImportConfig.cameras must name at least one camera topic')
        if self.image_size < 1 or self.image_size % PATCH_SIZE:
            raise ValueError(f'BagImportConfig.image_size must be a positive multiple of {PATCH_SIZE}, '
                             f'got {self.image_size}')
        if self.control_hz is not None and not self.control_hz > 0:
            raise ValueError(f'BagImportConfig.control_hz must be > 0, got {self.control_hz}')
        if self.seed < 0:
            raise ValueError(f'BagImportConfig.seed must be >= 0, got {self.seed}')


def _check_topics(bag: Path, config: BagImportConfig) -> None:
    """Every topic the import needs is in the bag, with a type it can read; else one line naming it."""
    from rosbags.rosbag2 import Reader

    try:
        with Reader(bag) as reader:
            types = {c.topic: c.msgtype for c in reader.connections}
    except Exception as e:   # rosbags raises several types for garbled or missing bags
        raise EpisodeError(f'{bag}: not a readable rosbag2 bag ({type(e).__name__}: {e})') from e
    wanted = [('joint states', config.joint_states_topic), ('action', config.action_topic),
              *(('camera', topic) for topic in config.cameras.values())]
    for role, topic in wanted:
        if topic not in types:
            raise EpisodeError(f"{bag}: no {role} topic {topic!r}; the bag has {', '.join(sorted(types)) or 'none'}")
        if types[topic] not in _TOPIC_TYPES[role]:
            raise EpisodeError(f"{bag}: {role} topic {topic!r} is {types[topic]}, expected "
                               f"{' or '.join(_TOPIC_TYPES[role])}")


def _latest(stamps: list[int], t: int) -> int:
    """Index of the newest stamp at or before t (-1: none yet)."""
    return bisect.bisect_right(stamps, t) - 1


def import_bag(bag, out_path, config: BagImportConfig = BagImportConfig()) -> EpisodeInfo:
    """Writes the bag `bag` (directory or .mcap) as the episode `out_path`; EpisodeError names what is wrong."""
    bag = Path(bag)
    profile = load_profile(config.robot)
    _check_topics(bag, config)
    msgs = read_messages(bag, [config.joint_states_topic, config.action_topic, *config.cameras.values()])
    joints, actions = msgs[config.joint_states_topic], msgs[config.action_topic]
    frames = {camera: msgs[topic] for camera, topic in config.cameras.items()}
    streams = [joints, *frames.values()]
    start = max(stream[0][0] for stream in streams) if all(streams) else None
    steps = [(t, m) for t, m in actions if start is not None and t >= start]
    if not steps:
        counts = {topic: len(v) for topic, v in msgs.items()}
        raise EpisodeError(f'{bag}: no action message comes after a joint state and a frame of every camera '
                           f'(messages per topic: {counts})')
    names = (*profile.joint_names, *profile.gripper_joint_names)
    if config.control_hz is not None:
        control_hz = config.control_hz
    elif len(steps) > 1:
        control_hz = round(1e9 / float(np.median(np.diff([t for t, _ in steps]))), 2)
    else:
        raise EpisodeError(f'{bag}: one control step only; give the control rate (--control-hz)')
    origin = steps[0][0]
    joint_stamps = [t for t, _ in joints]
    frame_stamps = {camera: [t for t, _ in stream] for camera, stream in frames.items()}
    with EpisodeWriter(out_path, profile.name, config.task, config.seed, control_hz, tuple(config.cameras),
                       profile.joint_names, profile.gripper_joint_names, driver='imported',
                       time_origin_ns=origin) as writer:
        for t, action_msg in steps:
            action = np.asarray(action_msg.data, np.float64)
            if action.shape != (ACTION_DIM,) or not np.isfinite(action).all() or np.abs(action).max() > 1.0:
                raise EpisodeError(f'{bag}: {config.action_topic} at {t} ns holds {action.tolist()}, expected '
                                   f'{ACTION_DIM} finite values in [-1, 1]')
            state = joints[_latest(joint_stamps, t)][1]
            try:
                q, qd = joint_state_to_arrays(state, names)
                images = {camera: camera_to_rgb(frames[camera][_latest(frame_stamps[camera], t)][1],
                                                config.image_size) for camera in frames}
            except ValueError as e:
                raise EpisodeError(f"{bag}: robot '{profile.name}': {e}") from e
            writer.add((t - origin) * 1e-9, q, qd, images, action)
        return writer.close(config.success)
