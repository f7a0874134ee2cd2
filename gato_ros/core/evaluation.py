"""Closed-loop evaluation of a learned policy in simulation: success, loop rates, deadline misses, safety.

The loop is the SIM engineer's runner (policy at control_hz -> CartesianActionSpace proposal -> SafetyFilter
at tick_hz -> StackingSim), the same one the expert records through, so train and test see the same loop.
The runner runs in sim time: a slow policy step does not slow the simulated arm, it is counted as a
deadline miss instead (on the robot it would make the safety controller brake: STALE_INPUT).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from .observation import observer_for
from .robots import ACTION_DIM
from .sim import SimConfig, StackingSim
from .sim.expert import Phase, ScriptedExpert
from .stats import LatencySummary
from .sim.runner import EpisodeResult, RunnerConfig, SimObservation, StepRecord, make_safety_filter, run_episode

EVAL_SEED = 1_000_000  # first evaluation seed: far from the recording seeds, which count up from 0
# Statuses where the safety filter holds or brakes to a hold instead of following the policy. The
# DECELERATE_* statuses only slow the arm along its path and are not counted here.
HALT_KIND = ('JOINT_BOUND', 'WORKSPACE_BOUND', 'STALE_INPUT', 'ESTOP', 'INVALID_INPUT')


class PolicyActor:
    """The runner's actor around a GatoPolicy: SimObservation -> Observer.observe -> policy.act -> action.

    The observation is built exactly as in training (the same Observer): gripper closure from the finger
    joints, tool pose from forward kinematics of q (not the simulator's privileged state). Latencies are kept per
    step. A step without a usable action (invalid observation) holds the arm still with the gripper unchanged."""

    def __init__(self, policy, robot: str, prompt=None):
        self.policy, self.prompt = policy, prompt
        self.observer = observer_for(robot)
        self.kin = self.observer.kinematics
        self.latencies: list[float] = []
        self.failures = 0
        self._grip = -1.0

    def reset(self) -> None:
        self.policy.reset(self.prompt)
        self._grip = -1.0

    def observation(self, obs: SimObservation) -> dict:
        return self.observer.observe(obs.images, obs.state.q, obs.state.finger_q)

    def act(self, obs: SimObservation) -> np.ndarray:
        result = self.policy.act(self.observation(obs))
        self.latencies.append(result.latency_s)
        if result.action is None:
            self.failures += 1
            return np.r_[np.zeros(ACTION_DIM - 1), self._grip]
        self._grip = float(result.action[-1])
        return np.asarray(result.action, dtype=np.float64)


@dataclass(frozen=True)
class EpisodeProgress:
    """How far a policy got in one episode, when success alone says nothing (0 %)."""
    furthest: Phase        # the furthest phase of the task reached ('lift' or later: the block was held)
    closest_xy: float      # m: nearest the tool came, in the table plane, to the block it has to pick up
    closings: int = 0      # gripper commands that went from open to closed (the expert: about one per episode)
    longest_hold: int = 0  # most consecutive steps the gripper was commanded closed (a carry needs ~60)
    phase_steps: tuple[int, ...] = ()  # control steps spent in each phase (Phase order): where an episode got stuck


class PhaseProgress:
    """on_step hook that measures an episode's EpisodeProgress: phases as the scripted expert reads each visited
    state (Phase order: approach, descend, close, lift, ...), distances from the privileged block poses."""

    ORDER = tuple(Phase)

    def __init__(self, expert: ScriptedExpert):
        self.expert = expert
        self.reset()

    def reset(self) -> None:
        self.furthest, self.closest_xy = Phase.APPROACH, float('inf')
        self.closings = self.hold = self.longest_hold = 0
        self.phase_steps = [0] * len(self.ORDER)

    def __call__(self, step: StepRecord) -> None:
        state = step.observation.state
        phase = self.expert.phase_of(state)
        self.phase_steps[self.ORDER.index(phase)] += 1
        if self.ORDER.index(phase) > self.ORDER.index(self.furthest):
            self.furthest = phase
        distance = float(np.linalg.norm(state.tool_pos[:2] - state.blocks[self.expert.top].position[:2]))
        self.closest_xy = min(self.closest_xy, distance)
        if step.gripper_command > 0:
            self.closings += self.hold == 0
            self.hold += 1
            self.longest_hold = max(self.longest_hold, self.hold)
        else:
            self.hold = 0

    def result(self) -> EpisodeProgress:
        return EpisodeProgress(self.furthest, self.closest_xy, self.closings, self.longest_hold,
                               tuple(self.phase_steps))


def progress_report(episodes: list[EpisodeProgress]) -> dict:
    """Episodes by furthest phase (task order), the closest approach to the block (median, and how many came
    within 1 cm: the expert's alignment tolerance for the grasp), the gripper: closings per episode (mean)
    and the longest hold (median steps), and the share of all steps spent in each phase (where episodes stall)."""
    closest = np.array([e.closest_xy for e in episodes])
    steps = np.sum([e.phase_steps for e in episodes if e.phase_steps], axis=0)
    median = lambda values: float(np.median(values)) if values else None  # noqa: E731
    return {'furthest_phase': {p.value: sum(e.furthest is p for e in episodes) for p in PhaseProgress.ORDER},
            'closest_xy_m_p50': round(median(closest.tolist()), 4) if closest.size else None,
            'closest_within_1cm': int((closest < 0.01).sum()),
            'gripper_closings_mean': round(float(np.mean([e.closings for e in episodes])), 3) if episodes else None,
            'longest_hold_steps_p50': median([e.longest_hold for e in episodes]),
            'step_share_by_phase': ({p.value: round(float(n / steps.sum()), 4)
                                     for p, n in zip(PhaseProgress.ORDER, steps)}
                                    if np.size(steps) and steps.sum() else None)}


@dataclass
class EvalSummary:
    episodes: list[EpisodeResult] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)   # seconds, every policy step of every episode
    failed_steps: int = 0                                   # policy steps without a usable action
    progress: list[EpisodeProgress] = field(default_factory=list)

    def add(self, result: EpisodeResult, latencies: list[float], failed_steps: int,
            progress: EpisodeProgress) -> None:
        self.episodes.append(result)
        self.latencies.extend(latencies)
        self.failed_steps += failed_steps
        self.progress.append(progress)

    def metrics(self, deadline_s: float) -> dict:
        lat = np.asarray(self.latencies, dtype=np.float64)
        n = len(self.episodes)
        sim_time = sum(r.sim_time for r in self.episodes)
        ticks = sum(sum(r.safety_statuses.values()) for r in self.episodes)
        halted = [r for r in self.episodes if any(r.safety_statuses.get(s, 0) for s in HALT_KIND)]
        statuses: dict[str, int] = {}
        for r in self.episodes:
            for name, count in r.safety_statuses.items():
                if name != 'OK':
                    statuses[name] = statuses.get(name, 0) + count
        return {
            'episodes': n,
            'success_rate': sum(r.success for r in self.episodes) / n if n else None,
            # What the policy's step time allows (1 / mean latency), not a measured rate: the runner is in sim time.
            'policy_compute_hz': round(1.0 / lat.mean(), 2) if lat.size else None,
            'command_hz': round(ticks / sim_time, 2) if sim_time else None,
            'deadline_s': deadline_s,
            'deadline_miss_rate': float((lat > deadline_s).mean()) if lat.size else None,
            'latency': LatencySummary.from_seconds(lat).to_dict(),
            'policy_steps': int(lat.size),
            'failed_policy_steps': self.failed_steps,
            'safety_interventions': {
                'ticks': sum(r.safety_interventions for r in self.episodes),
                'tick_fraction': sum(r.safety_interventions for r in self.episodes) / ticks if ticks else 0.0,
                'by_status': statuses,
                'halt_episode_fraction': len(halted) / n if n else None,
            },
            'mean_steps': sum(r.steps for r in self.episodes) / n if n else None,
            **progress_report(self.progress),
        }


class FrameRecorder:
    """on_step hook that keeps one frame per control step: the cameras side by side, upscaled."""

    def __init__(self, scale: int = 4):
        self.scale = scale
        self.frames: list[np.ndarray] = []

    def __call__(self, step: StepRecord) -> None:
        images = step.observation.images
        row = np.concatenate([images[c] for c in images], axis=1)
        self.frames.append(np.repeat(np.repeat(row, self.scale, axis=0), self.scale, axis=1))


def write_video(frames: list[np.ndarray], path, fps: float) -> str:
    """MP4 (H.264 through imageio-ffmpeg); GIF when ffmpeg is unavailable. Returns the written path."""
    import imageio.v2 as imageio
    path = str(path)
    try:
        imageio.mimwrite(path, frames, fps=fps, macro_block_size=1)
        return path
    except (ImportError, RuntimeError, OSError, ValueError):
        gif = path.rsplit('.', 1)[0] + '.gif'
        imageio.mimwrite(gif, frames, duration=1.0 / fps, loop=0)
        return gif


def write_latency_histogram(latencies, deadline_s: float, path, title: str = '') -> str:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    ms = np.asarray(latencies, dtype=np.float64) * 1e3
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    upper = max(float(ms.max()) if ms.size else 1.0, deadline_s * 1e3) * 1.05
    ax.hist(ms, bins=np.linspace(0.0, upper, 60), color='tab:blue')
    ax.axvline(deadline_s * 1e3, color='tab:red', linestyle='--', label=f'deadline {deadline_s * 1e3:.0f} ms')
    if ms.size:
        for q, style in ((50, ':'), (99, '-.')):
            value = np.percentile(ms, q)
            ax.axvline(value, color='black', linestyle=style, label=f'p{q} {value:.1f} ms')
    ax.set_xlabel('policy step latency (ms)')
    ax.set_ylabel('steps')
    ax.set_title(title or f'{ms.size} policy steps')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return str(path)


def _each(hooks):
    """One on_step hook that calls each of `hooks` in turn."""
    def on_step(step: StepRecord) -> None:
        for hook in hooks:
            hook(step)
    return on_step


def evaluate(policy, sim_config: SimConfig, runner_config: RunnerConfig, episodes: int, seed: int = EVAL_SEED,
             prompt=None, frames: FrameRecorder | None = None, progress: bool = True) -> EvalSummary:
    """Runs `episodes` closed-loop episodes (seeds seed, seed + 1, ...); `frames` records the first one."""
    if not runner_config.render:
        raise ValueError('evaluate: RunnerConfig.render must be True (the policy sees camera images)')
    sim = StackingSim(sim_config)
    actor = PolicyActor(policy, sim.profile.name, prompt)
    safety = make_safety_filter(sim.profile, actor.kin, runner_config)
    progress_hook = PhaseProgress(ScriptedExpert(task=sim_config.task, block_size=sim_config.block_size))
    summary = EvalSummary()
    bar = tqdm(range(seed, seed + episodes), desc='eval', unit='episode', disable=not progress, dynamic_ncols=True)
    try:
        for i, episode_seed in enumerate(bar):
            actor.latencies, actor.failures = [], 0
            progress_hook.reset()
            hooks = (progress_hook, frames) if frames is not None and i == 0 else (progress_hook,)
            result = run_episode(sim, actor, safety, actor.kin, episode_seed, runner_config, on_step=_each(hooks))
            summary.add(result, actor.latencies, actor.failures, progress_hook.result())
            bar.set_postfix(success=f'{sum(r.success for r in summary.episodes) / (i + 1):.0%}')
    finally:
        bar.close()
        sim.close()
    return summary
