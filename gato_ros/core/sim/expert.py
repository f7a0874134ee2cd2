"""Scripted expert for "stack A on B": a phase machine on the privileged sim state that outputs the policy's
own 5-D action [vx, vy, vz, yaw_rate, grip] in [-1, 1], so its demonstrations are learnable as they are.

Phases: approach above A -> descend -> close -> lift -> move above B -> lower -> open -> retreat -> hold.
Each phase is a proportional controller toward a tool target; a lost block sends the expert back to approach.
"""

import enum
from dataclasses import dataclass

import numpy as np

from gato_ros.core.robots import CartesianActionSpace
from gato_ros.core.sim.task import wrap_quarter


class Phase(enum.Enum):
    APPROACH = 'approach'
    DESCEND = 'descend'
    CLOSE = 'close'
    LIFT = 'lift'
    MOVE = 'move'
    LOWER = 'lower'
    OPEN = 'open'
    RETREAT = 'retreat'
    DONE = 'done'


@dataclass(frozen=True)
class ExpertConfig:
    hover: float = 0.08            # tool height above a block's top while moving over it (m)
    grasp_depth: float = 0.03      # fingertips this far below A's top when closing (m)
    drop: float = 0.004            # A's bottom this far above B's top when opening (m)
    gain: float = 3.0              # position error -> tool velocity (1/s)
    yaw_gain: float = 3.0          # yaw error -> yaw rate (1/s)
    position_tolerance: float = 0.004  # m: close enough to a target to change phase
    yaw_tolerance: float = 0.03    # rad
    grip_time: float = 0.6         # s to wait for the fingers to close / open
    lost_distance: float = 0.04    # A farther than this from the tool while carrying = dropped (m)

    def __post_init__(self):
        for field in ('hover', 'grasp_depth', 'gain', 'yaw_gain', 'position_tolerance', 'yaw_tolerance',
                      'grip_time', 'lost_distance'):
            if not getattr(self, field) > 0:
                raise ValueError(f'ExpertConfig.{field}={getattr(self, field)!r} is invalid; allowed: > 0')
        if not self.drop >= 0:
            raise ValueError(f'ExpertConfig.drop={self.drop!r} is invalid; allowed: >= 0')


class ScriptedExpert:
    """act(observation) -> action; observation.state is a SimState (block poses are privileged information)."""

    def __init__(self, task=('red', 'blue'), block_size: float = 0.05,
                 action_space: CartesianActionSpace = CartesianActionSpace(), config: ExpertConfig = ExpertConfig()):
        self.top, self.bottom = task
        self.block_size, self.action_space, self.config = block_size, action_space, config
        self.reset()

    def reset(self) -> None:
        self.phase, self._phase_start = Phase.APPROACH, None

    def _enter(self, phase: Phase, now: float) -> None:
        self.phase, self._phase_start = phase, now

    def act(self, observation) -> np.ndarray:
        state = observation.state
        cfg, half = self.config, self.block_size / 2
        a, b = state.blocks[self.top], state.blocks[self.bottom]
        tool, now = state.tool_pos, state.time
        if self._phase_start is None:
            self._phase_start = now
        elapsed = now - self._phase_start
        carrying = self.phase in (Phase.LIFT, Phase.MOVE, Phase.LOWER)
        if carrying and np.linalg.norm(a.position - tool) > cfg.lost_distance + half:
            self._enter(Phase.APPROACH, now)  # dropped it: start over
        grasp = a.position - tool  # block centre relative to the tool while held
        carry_z = b.position[2] + 2 * self.block_size + cfg.hover

        grip, target, yaw = -1.0, tool.copy(), None
        if self.phase is Phase.APPROACH:
            target = np.r_[a.position[:2], a.position[2] + half + cfg.hover]
            yaw = wrap_quarter(a.yaw - state.tool_yaw)
            if self._reached(target - tool, yaw):
                self._enter(Phase.DESCEND, now)
        elif self.phase is Phase.DESCEND:
            target = np.r_[a.position[:2], a.position[2] + half - cfg.grasp_depth]
            yaw = wrap_quarter(a.yaw - state.tool_yaw)
            if self._reached(target - tool, 0.0):
                self._enter(Phase.CLOSE, now)
        elif self.phase is Phase.CLOSE:
            grip = 1.0
            if elapsed >= cfg.grip_time:
                # Fully closed fingers mean the block was missed.
                self._enter(Phase.APPROACH if state.gripper > 0.9 else Phase.LIFT, now)
        elif self.phase is Phase.LIFT:
            grip, target = 1.0, np.r_[tool[:2], carry_z]
            if self._reached(target - tool, 0.0):
                self._enter(Phase.MOVE, now)
        elif self.phase is Phase.MOVE:
            grip = 1.0
            target = np.r_[b.position[:2] - grasp[:2], carry_z]
            yaw = wrap_quarter(b.yaw - a.yaw)
            if self._reached(target - tool, yaw):
                self._enter(Phase.LOWER, now)
        elif self.phase is Phase.LOWER:
            grip = 1.0
            a_target = np.r_[b.position[:2], b.position[2] + self.block_size + cfg.drop]
            target = tool + (a_target - a.position)
            yaw = wrap_quarter(b.yaw - a.yaw)
            if self._reached(target - tool, 0.0):
                self._enter(Phase.OPEN, now)
        elif self.phase is Phase.OPEN:
            if elapsed >= cfg.grip_time:
                self._enter(Phase.RETREAT, now)
        elif self.phase is Phase.RETREAT:
            target = np.r_[tool[:2], a.position[2] + half + cfg.hover]
            if self._reached(target - tool, 0.0):
                self._enter(Phase.DONE, now)
        return self._action(target - tool, yaw or 0.0, grip)

    def _reached(self, error: np.ndarray, yaw_error: float) -> bool:
        return bool(np.max(np.abs(error)) < self.config.position_tolerance
                    and abs(yaw_error) < self.config.yaw_tolerance)

    def _action(self, error: np.ndarray, yaw_error: float, grip: float) -> np.ndarray:
        """Proportional velocity toward the target, scaled (not clipped per axis) to keep the direction."""
        velocity = self.config.gain * error / self.action_space.max_linear_speed
        velocity /= max(1.0, float(np.max(np.abs(velocity))))
        yaw_rate = float(np.clip(self.config.yaw_gain * yaw_error / self.action_space.max_yaw_rate, -1.0, 1.0))
        return np.r_[velocity, yaw_rate, grip]
