"""`gato-ros demo`: sim_node + policy_node + safety_controller_node over real ROS 2 topics, stacking blocks.

One process. sim_node spins in a thread of its own (SingleThreadedExecutor: its EGL renderer is bound to one
thread, and mj_step releases the GIL, so physics runs beside the Python nodes); the policy, safety and recorder
nodes spin in bringup's MultiThreadedExecutor; all on sim time (sim_node publishes /clock). The policy
publishes ~/proposal; the safety controller is the only node that commands the arm, on the profile's
command_topic, which sim_node follows. A recorder node subscribes to the cameras (the video is what the policy
sees), the task status, the proposals and the commands (the "within limits" check).

Episodes: the policy and safety nodes are created per episode, after sim_node has reset to the next seed and holds
the ready pose, so the new safety controller starts from the measured pose and never drives the arm back to
where the previous episode ended.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import Float64MultiArray, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory

from gato_ros.core.policy import PolicyResult, PolicyStatus
from gato_ros.core.robots import load_profile
from gato_ros.core.sim import ScriptedExpert, SimObservation
from gato_ros.resources import resource_path, share_dir
from gato_ros.ros import bringup

EXPERT_NOTICE = ('No checkpoint that stacks is committed yet (checkpoints/gato-stack-tiny, trained here on CPU, '
                 'stacked 0/10 in gato-ros eval: see its MODEL_CARD.md): the scripted expert drives the arm through '
                 'the same ROS topics (policy_node -> ~/proposal -> safety_controller_node -> '
                 '/forward_position_controller/commands -> sim). The learned policy: '
                 'gato-ros demo --checkpoint checkpoints/gato-stack-tiny')
DEFAULT_CHECKPOINT = ('checkpoints', 'gato-stack')
PROPOSAL_TOPIC = '/gato/policy_node/proposal'
TASK_STATUS_TOPIC = '/gato/sim/task_status'
SPIN_TIMEOUT = 0.05  # s: how often the main loop checks the episode end and Ctrl-C
SETTLE_TIME = 0.3    # s (wall) sim_node keeps running after an episode so no late command survives the reset
RESET_TIMEOUT = 10.0  # s (wall) to see the next seed on the task status
FIRST_COMMAND_TIMEOUT = 30.0  # s (wall) for a new safety controller's first command to reach the sim
CAMERA_RATE = 30.0   # Hz (wall): 15 Hz frames are ~0.07 s old between renders, too close to the policy's
#                      0.1 s stale_timeout on a busy CPU


@dataclass(frozen=True)
class DemoOptions:
    robot: str = 'ur5e'                 # 'ur5e' | 'sawyer'
    episodes: int = 3                   # >= 1
    checkpoint: Path | None = None      # None: the committed checkpoint if there is one, else the scripted expert
    seed: int = 0                       # seed of the first episode; episode i uses seed + i
    out: Path = Path('runs/demo')       # demo.mp4 and demo_success.png go here
    max_time: float = 30.0              # episode limit (sim seconds), > 0
    video_fps: float = 10.0             # frames per sim second in the video, 1..30
    upscale: int = 4                    # nearest-neighbour magnification of the 64 px camera images, 1..16

    def __post_init__(self):
        checks = {'robot': (self.robot in ('ur5e', 'sawyer'), "'ur5e' or 'sawyer'"),
                  'episodes': (self.episodes >= 1, '>= 1'), 'seed': (0 <= self.seed < 2**31 - 1000, '0..2^31-1000'),
                  'max_time': (self.max_time > 0, '> 0 s'), 'video_fps': (1 <= self.video_fps <= 30, '1..30'),
                  'upscale': (1 <= self.upscale <= 16, '1..16')}
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f'DemoOptions.{name}={getattr(self, name)!r} is invalid; allowed: {allowed}')


@dataclass
class EpisodeReport:
    seed: int
    success: bool
    reason: str                     # task status reason at the end ('' when stacked)
    sim_time: float                 # s, sim time at the end of the episode
    wall_time: float                # s
    commands: int                   # commands the sim received on the command topic
    commands_outside_limits: int    # of those, outside the profile's joint position limits
    start_offset: float             # rad, max |first received command - ready pose|: ~0 = started from the reset
    #                                 pose (the depth-1 command publisher may drop the very first few)
    proposal_times: list = field(default_factory=list)   # monotonic receive times of non-empty proposals
    holds: int = 0                  # empty "hold" proposals (policy skipped a step)
    latencies: list = field(default_factory=list)        # policy step latencies (s)
    command_intervals: np.ndarray = field(default_factory=lambda: np.zeros(0))  # safety publish intervals (s)


class ExpertPolicy:
    """act(observation) -> PolicyResult: the scripted expert on sim_node's privileged state (block poses), for
    when no trained checkpoint exists. Its action still travels policy_node -> proposal -> safety -> sim."""

    def __init__(self, sim_node):
        self.sim_node = sim_node
        self.expert = ScriptedExpert(task=tuple(sim_node.config.task), block_size=sim_node.sim.config.block_size)
        self.random_weights = False

    def reset(self, prompt=None) -> None:
        self.expert.reset()

    def act(self, observation) -> PolicyResult:
        start = time.perf_counter()
        action = self.expert.act(SimObservation(self.sim_node.privileged_state(), None))
        return PolicyResult(np.asarray(action, dtype=np.float64), time.perf_counter() - start, PolicyStatus.OK)


def default_checkpoint() -> Path | None:
    path = share_dir().joinpath(*DEFAULT_CHECKPOINT)
    return path if (path / 'config.json').is_file() else None


def checkpoint_prompt(policy, robot: str, sim_config):
    """Hook: a checkpoint whose config has {'demo': {'prompt_task': [top, bottom]}} is conditioned on a successful
    scripted demonstration of that task, built exactly as `gato-ros eval --prompt-task` does; else no prompt."""
    task = policy.config.get('demo', {}).get('prompt_task')
    if not task:
        return None
    from gato_ros.commands.eval import demonstration_prompt_for

    return demonstration_prompt_for(policy, robot, task, sim_config)


class Recorder(Node):
    """Watches the topics: composes the video from the camera images, follows the task status, counts proposals
    and checks every arm command against the joint limits. All callbacks in one group: no locking needed."""

    def __init__(self, options: DemoOptions, profile, cameras, command_topic: str, writer, mode: str):
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
            self.create_subscription(Image, f'/camera/{camera}/image_raw', self._on_image(camera, first=i == 0),
                                     qos_profile_sensor_data, callback_group=group)
        self.create_subscription(String, TASK_STATUS_TOPIC, self._on_status, 10, callback_group=group)
        self.create_subscription(JointTrajectory, PROPOSAL_TOPIC, self._on_proposal, 10, callback_group=group)
        self.create_subscription(Float64MultiArray, command_topic, self._on_command, 10, callback_group=group)
        self.reset_client = self.create_client(Trigger, '/sim_node/reset')

    def start_episode(self, index: int, seed: int) -> None:
        self.episode_index = index
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
            ep.start_offset = float(np.abs(q - self.profile.ready).max())
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


class Interrupted(Exception):
    pass


class Demo:
    def __init__(self, options: DemoOptions, log=print):
        self.options, self.log = options, log
        self.stop = threading.Event()
        self.checkpoint = options.checkpoint or default_checkpoint()
        self.mode = 'checkpoint' if self.checkpoint else 'expert'

    def run(self) -> dict:
        import imageio.v2 as imageio
        from gato_ros.ros.nodes.sim_node import SimNode

        opts = self.options
        if self.mode == 'expert':
            self.log(EXPERT_NOTICE)
        profile = load_profile(opts.robot)
        opts.out.mkdir(parents=True, exist_ok=True)
        policy, image_size = None, 64
        if self.checkpoint:
            import torch
            from gato_ros.core.policy import GatoPolicy
            torch.set_num_threads(1)  # the sim, safety and video share this CPU: more threads fight them
            policy = GatoPolicy.from_checkpoint(self.checkpoint, profile)
            image_size = policy.spec.image_size
            self.log(f'checkpoint {self.checkpoint}: the trained Gato policy drives the arm')
        bringup.init(['--params-file', str(resource_path('config', 'sim.yaml')), '--log-level', 'warn',
                      '-p', f'image_size:={image_size}', '-p', f'camera_rate:={CAMERA_RATE}'])
        recorder = writer = sim_thread = None
        handlers = {sig: signal.signal(sig, lambda *_: self.stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        episodes: list[EpisodeReport] = []
        start = time.monotonic()
        try:
            sim_node = SimNode(parameter_overrides=[Parameter('robot', value=opts.robot),
                                                    Parameter('seed', value=opts.seed)])
            sim_thread = _SpinThread(sim_node)
            if policy is None:
                policy = ExpertPolicy(sim_node)
                prompt = None
            else:
                prompt = checkpoint_prompt(policy, opts.robot, sim_node.sim.config)
            video = opts.out / 'demo.mp4'
            writer = imageio.get_writer(video, fps=opts.video_fps, codec='libx264', quality=7, macro_block_size=8,
                                        ffmpeg_log_level='error')
            recorder = Recorder(opts, profile, tuple(sim_node.config.cameras), profile.command_topic, writer,
                                self.mode)
            for index in range(opts.episodes):
                seed = opts.seed + index
                if index:
                    self._reset_sim(recorder, seed)
                episodes.append(self._episode(index, seed, sim_node, recorder, policy, prompt))
                self._print_episode(index, episodes[-1])
            success_png = recorder.success_png
        finally:
            if sim_thread is not None:
                sim_thread.stop()
            if writer is not None:
                writer.close()
            if recorder is not None:
                recorder.destroy_node()
            rclpy.try_shutdown()
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return self._summary(episodes, time.monotonic() - start, video, success_png)

    def _spin(self, nodes, until, timeout: float) -> bool:
        """Spin `nodes` until until() or timeout (wall s); raises Interrupted on Ctrl-C/SIGTERM."""
        sys.setswitchinterval(bringup.GIL_SWITCH_INTERVAL)
        executor = bringup._Executor(num_threads=bringup.EXECUTOR_THREADS)
        for node in nodes:
            executor.add_node(node)
        deadline = time.monotonic() + timeout
        try:
            while not until() and time.monotonic() < deadline:
                if self.stop.is_set():
                    raise Interrupted()
                executor.spin_once(timeout_sec=SPIN_TIMEOUT)
            return until()
        finally:
            executor.shutdown(timeout_sec=5.0)

    def _reset_sim(self, recorder: Recorder, seed: int) -> None:
        """Next seed: sim_node first consumes any command still in flight, then resets and holds the ready pose."""
        self._spin([recorder], lambda: False, SETTLE_TIME)
        future = recorder.reset_client.call_async(Trigger.Request())
        if not self._spin([recorder], lambda: future.done() and recorder.current_status(seed), RESET_TIMEOUT):
            raise RuntimeError(f'sim_node did not reset to seed {seed} within {RESET_TIMEOUT} s')

    def _episode(self, index: int, seed: int, sim_node, recorder: Recorder, policy, prompt) -> EpisodeReport:
        """Fresh policy + safety nodes on the reset sim; the episode clock starts at the first command the sim
        receives and ends on success, a fallen block or max_time; then the arm is braked to a hold."""
        opts = self.options
        policy.reset(prompt)
        recorder.start_episode(index, seed)
        ep = recorder.episode
        policy_node, safety = bringup.build_nodes(bringup.BringupOptions(robot=opts.robot, use_sim_time=True),
                                                  policy=policy)
        nodes = [recorder, policy_node, safety]
        clock0, wall0 = sim_node.clock, time.monotonic()

        def finished() -> bool:
            status = recorder.current_status(seed)
            return bool(status.get('success') or status.get('failed')) or sim_node.clock - clock0 >= opts.max_time

        try:
            if not self._spin(nodes, lambda: ep.commands > 0, FIRST_COMMAND_TIMEOUT):
                raise RuntimeError(f'no command reached the sim on {safety.command_topic} within '
                                   f'{FIRST_COMMAND_TIMEOUT} s')
            clock0, wall0 = sim_node.clock, time.monotonic()
            self._spin(nodes, finished, float('inf'))
        finally:
            ep.command_intervals = np.diff(np.asarray(safety.publish_times))
            ep.latencies = list(policy_node.latencies)
            ep.wall_time, ep.sim_time = time.monotonic() - wall0, sim_node.clock - clock0
            policy_node.close()
            sent = safety.close()  # brakes to a hold and publishes those commands: the arm stops
            if self.stop.is_set():
                self.log(f'interrupted: arm braked to a hold with {sent} commands')
            policy_node.destroy_node()
            safety.destroy_node()
        status = sim_node.sim.task_status()
        ep.success, ep.reason = bool(status.success), status.reason
        return ep

    def _print_episode(self, index: int, ep: EpisodeReport) -> None:
        rate = _rate(ep.proposal_times)
        self.log(f'episode {index + 1}/{self.options.episodes} seed {ep.seed}: '
                 f"{'SUCCESS' if ep.success else 'failed (' + (ep.reason or 'time limit') + ')'} after "
                 f'{ep.sim_time:.1f} s sim / {ep.wall_time:.1f} s wall; policy {rate:.1f} Hz '
                 f'({ep.holds} holds), {ep.commands} commands ({ep.commands_outside_limits} outside limits), '
                 f'first received command {ep.start_offset:.4f} rad from the reset pose')

    def _summary(self, episodes: list[EpisodeReport], seconds: float, video: Path, success_png) -> dict:
        latencies = np.concatenate([np.asarray(e.latencies) for e in episodes]) * 1e3
        intervals = np.concatenate([e.command_intervals for e in episodes]) * 1e3
        proposal_intervals = np.concatenate([np.diff(e.proposal_times) for e in episodes])
        sim_time, wall_time = sum(e.sim_time for e in episodes), sum(e.wall_time for e in episodes)

        def pct(values, q):
            return round(float(np.percentile(values, q)), 3) if len(values) else None

        return {
            'robot': self.options.robot, 'mode': self.mode, 'episodes': len(episodes),
            'success_rate': round(sum(e.success for e in episodes) / len(episodes), 3),
            'policy_hz': round(1.0 / proposal_intervals.mean(), 2) if proposal_intervals.size else 0.0,
            'policy_latency_ms_p50': pct(latencies, 50), 'policy_latency_ms_p99': pct(latencies, 99),
            'policy_holds': sum(e.holds for e in episodes),
            'command_hz': round(1e3 / intervals.mean(), 1) if intervals.size else 0.0,
            'command_jitter_ms': round(float(intervals.std()), 3) if intervals.size else None,
            'command_interval_ms_p99': pct(intervals, 99),
            'commands_outside_limits': sum(e.commands_outside_limits for e in episodes),
            'start_offset_rad_max': round(max(e.start_offset for e in episodes), 4),
            'realtime_factor': round(sim_time / wall_time, 3) if wall_time else 0.0,
            'seconds': round(seconds, 1), 'video': str(video),
            'success_png': str(success_png) if success_png else None,
            'per_episode': [{'seed': e.seed, 'success': e.success, 'sim_time': round(e.sim_time, 2),
                             'wall_time': round(e.wall_time, 2), 'commands': e.commands} for e in episodes],
        }


class _SpinThread:
    """Spins one node in a thread of its own until stop(), then destroys it in that thread (its GL context)."""

    def __init__(self, node: Node):
        self._node, self._running = node, True
        self._thread = threading.Thread(target=self._spin, name=f'spin-{node.get_name()}', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        executor = SingleThreadedExecutor()
        executor.add_node(self._node)
        try:
            while self._running:
                executor.spin_once(timeout_sec=SPIN_TIMEOUT)
        finally:
            executor.shutdown()
            self._node.destroy_node()

    def stop(self) -> None:
        self._running = False
        self._thread.join()


def _rate(times) -> float:
    intervals = np.diff(times)
    return 1.0 / intervals.mean() if intervals.size else 0.0


def run_demo(options: DemoOptions, log=print) -> dict:
    """Run the demo; returns the summary dict. Raises Interrupted on Ctrl-C/SIGTERM (the arm stopped first)."""
    return Demo(options, log).run()
