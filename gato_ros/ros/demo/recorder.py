"""The demo's recorder node: the video (what the policy sees), the task status, the proposals and the arm
commands (the "within limits" check), all from the topics."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from gato_ros.ros import params
from gato_ros.ros.demo.options import DemoOptions, EpisodeReport


@dataclass(frozen=True)
class RecorderTopics:
    """Where the recorder listens: the names come from the nodes' configs (ros/params.py), never re-spelt."""
    task_status: str     # sim_node's task_status_topic
    proposal: str        # safety_controller_node's proposal_topic
    command: str         # the arm's command topic (the robot profile's)
    reset_service: str   # sim_node's ~/reset


class Recorder(Node):
    """Watches the topics: composes the video from the camera images, follows the task status, counts proposals
    and checks every arm command against the joint limits. All callbacks in one group: no locking needed."""

    def __init__(self, options: DemoOptions, profile, cameras, topics: 'RecorderTopics', writer, mode: str):
        super().__init__('demo_recorder')
        self.options, self.profile, self.cameras, self.writer, self.mode = options, profile, cameras, writer, mode
        self.episode: EpisodeReport | None = None
        self.episode_index = 0
        self.status: dict = {}
        self.images: dict[str, np.ndarray] = {}
        self.success_png: Path | None = None
        self._next_frame = 0.0
        group = MutuallyExclusiveCallbackGroup()
        for i, camera in enumerate(cameras):
            self.create_subscription(Image, params.camera_topic(camera), self._on_image(camera, first=i == 0),
                                     qos_profile_sensor_data, callback_group=group)
        self.create_subscription(String, topics.task_status, self._on_status, 10, callback_group=group)
        self.create_subscription(JointTrajectory, topics.proposal, self._on_proposal, 10, callback_group=group)
        self.create_subscription(Float64MultiArray, topics.command, self._on_command, 10, callback_group=group)
        self.reset_client = self.create_client(Trigger, topics.reset_service)

    def start_episode(self, index: int, seed: int, reset_pose: np.ndarray) -> None:
        """reset_pose: the arm joints sim_node reset to (the seed's start pose)."""
        self.episode_index, self._reset_pose = index, np.asarray(reset_pose)
        self.episode = EpisodeReport(seed=seed, success=False, reason='', sim_time=0.0, wall_time=0.0, commands=0,
                                     commands_outside_limits=0, start_offset=float('nan'))

    def _on_status(self, msg: String) -> None:
        self.status = json.loads(msg.data)
        ep = self.episode
        if (ep is not None and not ep.success and len(self.images) == len(self.cameras)
                and self.current_status(ep.seed).get('success')):
            # The episode ends on this message: its frame (SUCCESS overlay) closes the episode in the video, and
            # the first one is the still.
            ep.success = True
            frame = self._compose()
            self.writer.append_data(frame)
            if self.success_png is None:
                self.success_png = self.options.out / 'demo_success.png'
                cv2.imwrite(str(self.success_png), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))

    def current_status(self, seed: int) -> dict:
        return self.status if self.status.get('seed') == seed else {}

    def _on_proposal(self, msg: JointTrajectory) -> None:
        if self.episode is None:
            return
        if msg.points:
            self.episode.proposal_times.append(time.monotonic())
        else:
            self.episode.holds += 1

    def _on_command(self, msg: Float64MultiArray) -> None:
        ep = self.episode
        if ep is None:
            return
        q = np.asarray(msg.data)
        if ep.commands == 0:
            ep.start_offset = float(np.abs(q - self._reset_pose).max())
        ep.commands += 1
        ep.commands_outside_limits += int(np.any(q < self.profile.lower) or np.any(q > self.profile.upper))

    def _on_image(self, camera: str, first: bool):
        def on_image(msg: Image) -> None:
            self.images[camera] = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.width, 3)
            stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            if not first or self.episode is None or len(self.images) < len(self.cameras) or stamp < self._next_frame:
                return
            self._next_frame = max(self._next_frame + 1.0 / self.options.video_fps, stamp)
            self.writer.append_data(self._compose())
        return on_image

    def _compose(self) -> np.ndarray:
        """Both cameras side by side as the policy receives them, magnified, with episode / sim time / status."""
        k = self.options.upscale
        frame = np.concatenate([cv2.resize(self.images[c], None, fx=k, fy=k, interpolation=cv2.INTER_NEAREST)
                                for c in self.cameras], axis=1)
        status = self.current_status(self.episode.seed)
        state = ('SUCCESS' if status.get('success') else 'stacked' if status.get('stacked') else
                 'FAILED' if status.get('failed') else 'stacking')
        lines = (f'{self.profile.name} {self.mode}  episode {self.episode_index + 1}/{self.options.episodes} '
                 f'seed {self.episode.seed}', f't = {status.get("time", 0.0):5.1f} s   {state}')
        for row, text in enumerate(lines):
            origin = (6, 16 + 16 * row)
            cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(frame, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        return frame
