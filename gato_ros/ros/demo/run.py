"""The demo's episodes: sim_node, the policy and the safety controller each in a process of their own.

This process runs sim_node (in a thread of its own, on one thread: its EGL renderer is bound to it, and mj_step
releases the GIL) and the recorder node, which subscribes to the cameras (the video is what the policy sees), the
task status, the proposals and the commands (the "within limits" check). The safety controller runs in a child
process (node_process.NodeProcess); so does the policy when a checkpoint drives, loaded once there. The scripted
expert reads sim_node's privileged state, so when it drives its policy_node stays in this process (its step is
cheap). All on sim time (sim_node publishes /clock). The policy publishes ~/proposal; the safety controller is
the only node that commands the arm, on the profile's command_topic, which sim_node follows. With the real-time
option each process gets its SCHED_FIFO priority and CPUs (placement.placements).

Episodes: the policy and safety nodes are built per episode, after sim_node has reset to the next seed and holds
the ready pose, so the new safety controller starts from the measured pose and never drives the arm back to
where the previous episode ended.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from std_srvs.srv import Trigger

from gato_ros.core.policy_spec import PolicySpec
from gato_ros.core.robots import load_profile
from gato_ros.resources import resource_path, share_dir
from gato_ros.ros import bringup, placement, runtime
from gato_ros.ros.demo.report import episode_line, summary
from gato_ros.ros.demo.expert import ExpertPolicy
from gato_ros.ros.demo.options import DemoOptions, EpisodeReport
from gato_ros.ros.demo.recorder import Recorder, RecorderTopics
from gato_ros.ros.node_process import NodeProcess
from gato_ros.ros.params import SafetyNodeConfig, camera_topic

EXPERT_NOTICE = ('The scripted expert drives the arm (--expert, or no checkpoints/gato-stack installed) through the '
                 'same ROS topics (policy_node -> ~/proposal -> safety_controller_node -> '
                 '/forward_position_controller/commands -> sim). The learned policy drives without --expert.')
DEFAULT_CHECKPOINT = ('checkpoints', 'gato-stack')
SETTLE_TIME = 0.3    # s (wall) sim_node keeps running after an episode so no late command survives the reset
RESET_TIMEOUT = 10.0  # s (wall) to see the next seed on the task status
FIRST_COMMAND_TIMEOUT = 30.0  # s (wall) for a new safety controller's first command to reach the sim


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


class PolicyFactory:
    """Builds policy_node around a checkpoint's GatoPolicy in the policy's own process (node_process.NodeProcess):
    loaded, and its prompt built, on the first episode; reset to that prompt on every episode."""

    def __init__(self, options: bringup.BringupOptions, checkpoint: Path, sim_config):
        self.options, self.checkpoint, self.sim_config = options, checkpoint, sim_config
        self._policy = self._prompt = None

    def __call__(self):
        if self._policy is None:
            import torch
            from gato_ros.core.policy import GatoPolicy

            torch.set_num_threads(1)  # the sim, safety and video share this CPU: more threads fight them
            self._policy = GatoPolicy.from_checkpoint(self.checkpoint, load_profile(self.options.robot))
            self._prompt = checkpoint_prompt(self._policy, self.options.robot, self.sim_config)
        self._policy.reset(self._prompt)
        return bringup.policy_node(self.options, policy=self._policy)

    @staticmethod
    def measure(node) -> dict:
        return {'latencies': list(node.latencies), 'deadline': node.config.deadline}


def checkpoint_spec(checkpoint: Path):
    """The observation layout (cameras, image size) the checkpoint was trained on, from its config.json (the
    weights load in the policy's process)."""
    try:
        config = json.loads((checkpoint / 'config.json').read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f'checkpoint {checkpoint}: cannot read config.json ({exc})') from None
    return PolicySpec.from_checkpoint_config(config)


class Interrupted(Exception):
    pass


class Demo:
    def __init__(self, options: DemoOptions, log=print):
        self.options, self.log = options, log
        self.stop: threading.Event | None = None  # while run() runs: set by SIGINT/SIGTERM
        self.checkpoint = None if options.expert else options.checkpoint or default_checkpoint()
        self.mode = 'checkpoint' if self.checkpoint else 'expert'
        self.node_options = bringup.BringupOptions(robot=options.robot, use_sim_time=True,
                                                   realtime=options.realtime)
        self.expert: ExpertPolicy | None = None        # expert mode: its policy_node runs in this process
        self.policy_process: NodeProcess | None = None  # checkpoint mode
        self.safety_process: NodeProcess | None = None

    def run(self) -> dict:
        import imageio.v2 as imageio
        from gato_ros.ros.nodes.sim_node import SimNode

        opts = self.options
        if self.mode == 'expert':
            self.log(EXPERT_NOTICE)
        else:
            self.log(f'checkpoint {self.checkpoint}: the trained Gato policy drives the arm')
        profile = load_profile(opts.robot)
        opts.out.mkdir(parents=True, exist_ok=True)
        spec = checkpoint_spec(self.checkpoint) if self.checkpoint else PolicySpec()
        cameras = ','.join(spec.cameras)   # sim_node renders, and policy_node reads, the checkpoint's cameras
        topics = ','.join(camera_topic(c) for c in spec.cameras)
        ros_args = ['--params-file', str(resource_path('config', 'sim.yaml')), '--log-level', 'warn',
                    '-p', f'image_size:={spec.image_size}', '-p', f'cameras:=[{cameras}]',
                    '-p', f'camera_topics:=[{topics}]']
        self.safety_process = bringup.safety_process(self.node_options, ros_args)
        recorder = writer = sim_thread = None
        episodes: list[EpisodeReport] = []
        start = time.monotonic()
        with runtime.stop_on_signals() as self.stop:
            try:
                placement.place(placement.placements(opts.realtime)['sim'], 'sim_node')
                runtime.init(bringup.init_args(ros_args))
                # The observation layout as node overrides: config/sim.yaml names the shipped checkpoint's cameras,
                # and a node's params-file entry outranks a global -p.
                sim_node = SimNode(parameter_overrides=[Parameter('robot', value=opts.robot),
                                                        Parameter('seed', value=opts.seed),
                                                        Parameter('cameras', value=list(spec.cameras)),
                                                        Parameter('image_size', value=spec.image_size)])
                if self.checkpoint:
                    self.policy_process = NodeProcess(
                        'policy_node', PolicyFactory(self.node_options, self.checkpoint, sim_node.sim.config),
                        bringup.init_args(ros_args), placement.placements(opts.realtime)['policy'])
                else:
                    self.expert = ExpertPolicy(sim_node)
                sim_thread = _SpinThread(sim_node)
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
                    episodes.append(self._episode(index, seed, sim_node, recorder))
                    self.log(episode_line(opts, index, episodes[-1]))
                success_png = recorder.success_png
            finally:
                for process in (self.policy_process, self.safety_process):
                    if process is not None:
                        process.close()
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

    def _start_policy(self) -> list[Node]:
        """This episode's policy: the expert's node here, or the checkpoint's in its process."""
        if self.expert is not None:
            self.expert.reset()
            return [bringup.policy_node(self.node_options, policy=self.expert)]
        self.policy_process.start()
        return []

    def _stop_policy(self, nodes: list[Node]) -> dict:
        """Stop this episode's policy; returns its measurements (PolicyFactory.measure)."""
        if self.expert is None:
            return self.policy_process.stop()
        measured = {}
        for node in nodes:
            node.destroy_node()  # closes it first
            measured = PolicyFactory.measure(node)
        return measured

    def _episode(self, index: int, seed: int, sim_node, recorder: Recorder) -> EpisodeReport:
        """Fresh policy + safety nodes on the reset sim; the episode clock starts at the first command the sim
        receives and ends on success, a fallen block or max_time; then the arm is braked to a hold."""
        opts = self.options
        recorder.start_episode(index, seed, sim_node.privileged_state().q)
        ep = recorder.episode
        policy_nodes = []
        clock0, wall0 = sim_node.clock, time.monotonic()

        def finished() -> bool:
            status = recorder.current_status(seed)
            return bool(status.get('success') or status.get('failed')) or sim_node.clock - clock0 >= opts.max_time

        try:
            policy_nodes = self._start_policy()  # first: a checkpoint loads for seconds, the safety controller not
            self.safety_process.start()
            nodes = [recorder, *policy_nodes]
            if not self._spin(nodes, lambda: ep.commands > 0, FIRST_COMMAND_TIMEOUT):
                raise RuntimeError(f'no command reached the sim on {load_profile(opts.robot).command_topic} within '
                                   f'{FIRST_COMMAND_TIMEOUT} s')
            clock0, wall0 = sim_node.clock, time.monotonic()
            self._spin(nodes, finished, float('inf'))
        finally:
            ep.wall_time, ep.sim_time = time.monotonic() - wall0, sim_node.clock - clock0
            policy = self._stop_policy(policy_nodes)
            ep.latencies, ep.deadline = policy.get('latencies', []), policy.get('deadline')
            safety = self.safety_process.stop()  # brakes to a hold and publishes those commands: the arm stops
            ep.safety_rate, ep.command_times = safety.get('rate_hz'), safety.get('wall', [])
            # The episode's commands in sim time: from the first the sim received to the end, braking included.
            ep.command_stamps = [t for t in safety.get('stamps', []) if t >= clock0]
            if self.stop.is_set():
                self.log('interrupted: arm braked to a hold')
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
            runtime.spin_until([self._node], lambda: not self._running)
        finally:
            self._node.destroy_node()

    def stop(self) -> None:
        self._running = False
        self._thread.join()


def run_demo(options: DemoOptions, log=print) -> dict:
    """Run the demo; returns the summary dict. Raises Interrupted on Ctrl-C/SIGTERM (the arm stopped first)."""
    return Demo(options, log).run()
