"""Recording expert demonstrations: the scripted expert in the closed loop (SafetyFilter included), every
control step written to an MCAP episode as it happens."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..robots import Kinematics
from ..sim import SimConfig, StackingSim
from ..sim.expert import ScriptedExpert
from ..sim.runner import EpisodeResult, RunnerConfig, StepRecord, make_safety_filter, run_episode
from .mcap_io import EpisodeError, EpisodeInfo, EpisodeWriter, read_info


def episode_filename(robot: str, task, seed: int) -> str:
    return f'{robot}_{task[0]}-on-{task[1]}_seed{seed:07d}.mcap'


@dataclass
class Recorder:
    """One simulation + expert per (robot, task); record(seed, path) writes one episode."""

    sim_config: SimConfig
    runner_config: RunnerConfig

    def __post_init__(self):
        if not self.runner_config.render:
            raise ValueError('Recorder: RunnerConfig.render must be True (episodes hold the camera images)')
        self.sim = StackingSim(self.sim_config)
        self.kin = Kinematics(self.sim.profile)
        self.safety = make_safety_filter(self.sim.profile, self.kin, self.runner_config)
        self.expert = ScriptedExpert(task=self.sim_config.task, block_size=self.sim_config.block_size)

    def record(self, seed: int, path) -> tuple[EpisodeInfo, EpisodeResult]:
        profile = self.sim.profile
        writer = EpisodeWriter(path, profile.name, self.sim_config.task, seed, self.runner_config.control_hz,
                               self.sim_config.cameras, profile.joint_names, profile.gripper_joint_names)

        def on_step(step: StepRecord) -> None:
            # on_step runs before the step's safety ticks, so the sim still holds the observed state.
            positions, velocities = self.sim.all_joints()
            writer.add(step.observation.state.time, positions, velocities, step.observation.images, step.action)

        with writer:
            result = run_episode(self.sim, self.expert, self.safety, self.kin, seed, self.runner_config,
                                 on_step=on_step)
            return writer.close(result.success), result

    def close(self) -> None:
        self.sim.close()


def is_complete(path) -> bool:
    """True when `path` is a finished episode (recording skips those, which makes it resumable)."""
    try:
        read_info(path)
        return True
    except (EpisodeError, FileNotFoundError):
        return False


def pending_episodes(out_dir, robot: str, tasks, seed: int, episodes: int) -> list[tuple[int, tuple, Path]]:
    """(seed, task, path) of the episodes still to record; episode i has seed seed + i and cycles the tasks."""
    plan = [(seed + i, tuple(tasks[i % len(tasks)])) for i in range(episodes)]
    paths = [(s, task, Path(out_dir) / episode_filename(robot, task, s)) for s, task in plan]
    return [(s, task, p) for s, task, p in paths if not is_complete(p)]
