"""The closed loop shared by the scripted expert, recording and evaluation of a learned policy.

    actor.act(observation) at control_hz  ->  CartesianActionSpace.proposal  ->  Proposal
    SafetyFilter.tick at tick_hz (the arm's controller rate)  ->  StackingSim.step(command, gripper)

Everything runs in sim time, so an episode takes as long as it computes. The actor is anything with
`act(observation: SimObservation) -> action (ACTION_DIM,)` and optionally `reset()`; images are rendered only
when RunnerConfig.render is set, so expert-only runs stay fast.
"""

import collections
from dataclasses import dataclass
from typing import Callable

import numpy as np

from gato_ros.core.robots import ACTION_DIM, CartesianActionSpace
from gato_ros.core.safety import Proposal, SafetyConfig, SafetyFilter, SafetyStatus
from gato_ros.core.sim.stacking import SimState, StackingSim
from gato_ros.core.sim.task import TaskStatus


STILL_DISTANCE = 0.002   # m: a tool that moved less than this over RunnerConfig.stop_when_still steps is still


@dataclass(frozen=True)
class RunnerConfig:
    control_hz: float = 10.0      # actor (policy / expert) rate (Hz), 1..50
    tick_hz: float = 500.0        # safety filter and arm command rate (Hz), control_hz..physics rate; the
    #                               physics timestep must divide the tick period
    horizon: float = 0.2          # proposal horizon (s), > 1 / control_hz so a proposal outlives its period
    proposal_points: int = 5      # points per proposal, 2..50
    max_time: float = 30.0        # episode limit in sim time (s), > 0
    render: bool = False          # render camera images into each observation
    stop_when_still: int = 0      # end the episode once the tool has moved < STILL_DISTANCE over this many control
    #                               steps (0: never). A one-timestep policy held at a workspace bound sees the
    #                               same observation every step and stays there: DAgger rollouts stop there
    #                               instead of recording the same state a hundred times

    def __post_init__(self):
        def check(field, ok, allowed):
            if not ok:
                raise ValueError(f'RunnerConfig.{field}={getattr(self, field)!r} is invalid; allowed: {allowed}')
        check('control_hz', 1 <= self.control_hz <= 50, '1..50')
        check('tick_hz', self.control_hz <= self.tick_hz <= 5000, f'{self.control_hz}..5000')
        check('horizon', 1 / self.control_hz < self.horizon <= 2.0, f'({1 / self.control_hz}, 2] s')
        check('proposal_points', 2 <= self.proposal_points <= 50, '2..50')
        check('max_time', self.max_time > 0, '> 0 s')
        check('stop_when_still', self.stop_when_still >= 0, '>= 0 steps')


@dataclass(frozen=True)
class SimObservation:
    state: SimState               # privileged full state (the expert uses block poses; a policy should not)
    images: dict | None           # camera -> uint8 (H, W, 3), None unless RunnerConfig.render


@dataclass(frozen=True)
class StepRecord:
    """One control step, handed to run_episode's on_step (recording, evaluation statistics)."""
    observation: SimObservation
    action: np.ndarray            # (ACTION_DIM,) in [-1, 1]
    gripper_command: float        # 0 open .. 1 closed
    proposal: Proposal


@dataclass(frozen=True)
class EpisodeResult:
    seed: int
    success: bool
    steps: int                    # control steps taken
    sim_time: float               # s
    safety_interventions: int     # ticks whose status was not OK
    safety_statuses: dict         # SafetyStatus name -> ticks
    task: TaskStatus              # at the end of the episode
    still: bool = False           # ended by RunnerConfig.stop_when_still


def make_safety_filter(profile, kin, config: RunnerConfig = RunnerConfig()) -> SafetyFilter:
    """The SafetyFilter the real safety_controller_node would run, at the runner's tick rate."""
    return SafetyFilter(SafetyConfig.from_profile(profile, dt=1.0 / config.tick_hz), kin.tool_position)


def run_episode(sim: StackingSim, actor, safety: SafetyFilter, kin, seed: int,
                config: RunnerConfig = RunnerConfig(), action_space: CartesianActionSpace = CartesianActionSpace(),
                on_step: Callable[[StepRecord], None] | None = None) -> EpisodeResult:
    """Reset everything to `seed` and run until success, a block falls off the table, or config.max_time."""
    tick = 1.0 / config.tick_hz
    substeps = tick / sim.model.opt.timestep
    if abs(substeps - round(substeps)) > 1e-6:
        raise ValueError(f'tick period {tick} s is not a multiple of the physics timestep {sim.model.opt.timestep} s')
    ticks_per_step = max(1, round(config.tick_hz / config.control_hz))
    sim.reset(seed)
    q, _ = sim.joint_positions()
    safety.reset(q)
    if hasattr(actor, 'reset'):
        actor.reset()
    statuses = collections.Counter()
    steps, still = 0, False
    recent = collections.deque(maxlen=config.stop_when_still + 1)   # tool positions of the last steps
    while sim.time < config.max_time - tick / 2:
        state = sim.state()
        recent.append(state.tool_pos)
        if config.stop_when_still and len(recent) == recent.maxlen:
            if np.max(np.linalg.norm(np.array(recent) - recent[-1], axis=1)) < STILL_DISTANCE:
                still = True
                break
        observation = SimObservation(state, sim.render() if config.render else None)
        action = np.asarray(actor.act(observation), dtype=np.float64)
        if action.shape != (ACTION_DIM,) or not np.isfinite(action).all():
            raise ValueError(f'actor returned action {action.tolist()}: expected {ACTION_DIM} finite values')
        action = np.clip(action, -1.0, 1.0)
        proposal = action_space.proposal(kin, state.q, action, state.time, config.horizon, config.proposal_points)
        gripper = action_space.gripper_command(action)
        if on_step is not None:
            on_step(StepRecord(observation, action, gripper, proposal))
        for _ in range(ticks_per_step):
            now = sim.time
            q, qd = sim.joint_positions()
            out = safety.tick(now, q, qd, proposal, observation_age=now - state.time)
            statuses[SafetyStatus(out.status).name] += 1
            sim.step(out.positions, gripper, tick)
        steps += 1
        status = sim.task_status()
        if status.success or status.failed:
            break
    return EpisodeResult(seed=seed, success=sim.task_status().success, steps=steps, sim_time=sim.time,
                         safety_interventions=sum(n for name, n in statuses.items() if name != 'OK'),
                         safety_statuses=dict(statuses), task=sim.task_status(), still=still)
