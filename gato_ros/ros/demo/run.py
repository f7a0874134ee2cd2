"""The demo's episodes, on the runtime's spin_until.

One process. sim_node spins in a thread of its own (SingleThreadedExecutor: its EGL renderer is bound to one
thread, and mj_step releases the GIL, so physics runs beside the Python nodes); the policy, safety and recorder
nodes spin in the runtime's MultiThreadedExecutor; all on sim time (sim_node publishes /clock). The policy
publishes ~/proposal; the safety controller is the only node that commands the arm, on the profile's
command_topic, which sim_node follows. A recorder node subscribes to the cameras (the video is what the policy
sees), the task status, the proposals and the commands (the "within limits" check).

Episodes: the policy and safety nodes are created per episode, after sim_node has reset to the next seed and holds
the ready pose, so the new safety controller starts from the measured pose and never drives the arm back to
where the previous episode ended.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from gato_ros.core.robots import load_profile
from gato_ros.resources import resource_path, share_dir
from gato_ros.ros import bringup, runtime
from gato_ros.ros.demo.report import episode_line, summary
from gato_ros.ros.demo.expert import ExpertPolicy
from gato_ros.ros.demo.options import DemoOptions, EpisodeReport
from gato_ros.ros.demo.recorder import Recorder, RecorderTopics
from gato_ros.ros.params import SafetyNodeConfig

EXPERT_NOTICE = ('No checkpoint that stacks is committed yet (checkpoints/gato-stack-tiny, trained here on CPU, '
                 'stacked 0/100 in gato-ros eval: see its MODEL_CARD.md), so the scripted expert drives the arm '
                 'through the same ROS topics (policy_node -> ~/proposal -> safety_controller_node -> '
                 '/forward_position_controller/commands -> sim). The learned policy: '
                 'gato-ros demo --checkpoint checkpoints/gato-stack-tiny')
DEFAULT_CHECKPOINT = ('checkpoints', 'gato-stack')
SETTLE_TIME = 0.3    # s (wall) sim_node keeps running after an episode so no late command survives the reset
RESET_TIMEOUT = 10.0  # s (wall) to see the next seed on the task status
FIRST_COMMAND_TIMEOUT = 30.0  # s (wall) for a new safety controller's first command to reach the sim
CAMERA_RATE = 30.0   # Hz (wall): 15 Hz frames are ~0.07 s old between renders, too close to the policy's
#                      0.1 s stale_timeout on a busy CPU


def default_checkpoint() -> Path | None:
    path = share_dir().joinpath(*DEFAULT_CHECKPOINT)
    return path if (path / 'config.json').is_file() else None


def checkpoint_prompt(policy, robot: str, sim_config):
    """A checkpoint whose PolicySpec names a prompt_task is conditioned on a successful scripted demonstration of
    that task, built exactly as `gato-ros eval --prompt-task` does; else no prompt."""
    if not policy.spec.prompt_task:
        return None
    from gato_ros.core.demonstration import demonstration_prompt_for

    return demonstration_prompt_for(policy, robot, policy.spec.prompt_task, sim_config)


class Interrupted(Exception):
    pass


class Demo:
    def __init__(self, options: DemoOptions, log=print):
        self.options, self.log = options, log
        self.stop: threading.Event | None = None  # while run() runs: set by SIGINT/SIGTERM
        self.checkpoint = None if options.expert else options.checkpoint or default_checkpoint()
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
        episodes: list[EpisodeReport] = []
        start = time.monotonic()
        with runtime.stop_on_signals() as self.stop:
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
                topics = RecorderTopics(task_status=sim_node.config.task_status_topic,
                                        proposal=SafetyNodeConfig.proposal_topic, command=profile.command_topic,
                                        reset_service=f'{sim_node.get_fully_qualified_name()}/reset')
                recorder = Recorder(opts, profile, tuple(sim_node.config.cameras), topics, writer, self.mode)
                for index in range(opts.episodes):
                    seed = opts.seed + index
                    if index:
                        self._reset_sim(recorder, seed)
                    episodes.append(self._episode(index, seed, sim_node, recorder, policy, prompt))
                    self.log(episode_line(opts, index, episodes[-1]))
                success_png = recorder.success_png
            finally:
                if sim_thread is not None:
                    sim_thread.stop()
                if writer is not None:
                    writer.close()
                if recorder is not None:
                    recorder.destroy_node()
                rclpy.try_shutdown()
        return summary(opts, self.mode, episodes, time.monotonic() - start, video, success_png)

    def _spin(self, nodes, until, timeout: float) -> bool:
        """Spin `nodes` until until() or timeout (wall s); raises Interrupted on Ctrl-C/SIGTERM."""
        runtime.spin_until(nodes, lambda: until() or self.stop.is_set(), timeout)
        if self.stop.is_set() and not until():
            raise Interrupted()
        return until()

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


class _SpinThread:
    """Spins one node in a thread of its own until stop(), then destroys it in that thread (its GL context)."""

    def __init__(self, node: Node):
        self._node, self._running = node, True
        self._thread = threading.Thread(target=self._spin, name=f'spin-{node.get_name()}', daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            runtime.spin_until([self._node], lambda: not self._running, threads=1)
        finally:
            self._node.destroy_node()

    def stop(self) -> None:
        self._running = False
        self._thread.join()


def run_demo(options: DemoOptions, log=print) -> dict:
    """Run the demo; returns the summary dict. Raises Interrupted on Ctrl-C/SIGTERM (the arm stopped first)."""
    return Demo(options, log).run()
