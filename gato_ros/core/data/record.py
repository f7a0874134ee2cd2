"""Recording demonstrations: the scripted expert in the closed loop (SafetyFilter included), every control step
written to an episode (a rosbag2 bag) as it happens.

DAgger uses the same recorder with another driver: a learned policy (or a mix of it and the expert) moves the
arm, and every state it visits is labelled with the action the expert would take there (ExpertLabelled). The
episode is marked driver='policy', so training keeps it whether or not the rollout succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..robots import Kinematics
from ..sim import SimConfig, StackingSim
from ..sim.expert import ScriptedExpert
from ..sim.runner import EpisodeResult, RunnerConfig, StepRecord, make_safety_filter, run_episode
from .mcap_io import EpisodeError, EpisodeInfo, EpisodeWriter, read_info


class ExpertLabelled:
    """Runner actor for DAgger: `driver` acts (with probability beta the expert does instead); `label` is the
    expert's action for the same observation. The expert sees every state, so its phase machine follows the
    rollout wherever the driver takes it."""

    def __init__(self, driver, expert: ScriptedExpert, beta: float = 0.0, seed: int = 0):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f'ExpertLabelled beta must be in [0, 1], got {beta}')
        self.driver, self.expert, self.beta = driver, expert, beta
        self.rng = np.random.default_rng(seed)
        self.label = None

    def reset(self) -> None:
        self.expert.reset()
        if hasattr(self.driver, 'reset'):
            self.driver.reset()

    def act(self, observation):
        self.label = np.asarray(self.expert.act(observation), dtype=np.float64)
        action = self.driver.act(observation)
        return self.label if self.rng.random() < self.beta else action


def episode_filename(robot: str, task, seed: int) -> str:
    """The episode's bag directory name (single-file episodes of earlier recordings add '.mcap')."""
    return f'{robot}_{task[0]}-on-{task[1]}_seed{seed:07d}'


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

    def record(self, seed: int, path, driver=None, beta: float = 0.0,
               watch=None) -> tuple[EpisodeInfo, EpisodeResult]:
        """One episode to `path`: the expert drives, or `driver` does (beta: share of expert actions) and the
        expert labels each step. `watch`, if given, also sees every StepRecord (e.g. evaluation.PhaseProgress)."""
        profile = self.sim.profile
        actor = self.expert if driver is None else ExpertLabelled(driver, self.expert, beta, seed)
        writer = EpisodeWriter(path, profile.name, self.sim_config.task, seed, self.runner_config.control_hz,
                               self.sim_config.cameras, profile.joint_names, profile.gripper_joint_names,
                               driver='expert' if driver is None else 'policy')

        def on_step(step: StepRecord) -> None:
            # on_step runs before the step's safety ticks, so the sim still holds the observed state.
            positions, velocities = self.sim.all_joints()
            state = step.observation.state
            blocks = {color: (pose.position, pose.quaternion) for color, pose in state.blocks.items()}
            label = step.action if driver is None else actor.label
            writer.add(state.time, positions, velocities, step.observation.images, label, blocks)
            if watch is not None:
                watch(step)

        with writer:
            result = run_episode(self.sim, actor, self.safety, self.kin, seed, self.runner_config,
                                 on_step=on_step)
            return writer.close(result.success), result

    def close(self) -> None:
        self.sim.close()


def is_complete(path) -> bool:
    """True when `path` is a finished episode, as a bag or as the single file `path.mcap` of an earlier
    recording (recording skips those, which makes it resumable)."""
    for candidate in (Path(path), Path(f'{path}.mcap')):
        try:
            read_info(candidate)
            return True
        except (EpisodeError, FileNotFoundError):
            continue
    return False


def pending_episodes(out_dir, robot: str, tasks, seed: int, episodes: int) -> list[tuple[int, tuple, Path]]:
    """(seed, task, path) of the episodes still to record; episode i has seed seed + i and cycles the tasks."""
    plan = [(seed + i, tuple(tasks[i % len(tasks)])) for i in range(episodes)]
    paths = [(s, task, Path(out_dir) / episode_filename(robot, task, s)) for s, task in plan]
    return [(s, task, p) for s, task, p in paths if not is_complete(p)]
