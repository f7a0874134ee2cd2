"""Scripted expert for "stack A on B": a policy on the privileged sim state that outputs the policy's own 5-D
action [vx, vy, vz, yaw_rate, grip] in [-1, 1], so its demonstrations are learnable as they are.

Phases: approach above A -> descend -> close -> lift -> move above B -> lower -> open -> retreat -> done.
Each phase is a proportional controller toward a tool target. By default the tool keeps its start heading and the
closing fingers square A whatever its yaw (79 of 80 seeds stack, against ~99.5% with alignment): a learner never has
to read a block's yaw from a few pixels, and one that has spun the tool is turned back to the heading its camera was
trained on (policies that learned to align spun to -1.8 rad, lost the block in the rotated wrist view and drove into
a workspace bound). With `align` the tool turns the fingers to A's faces before the grasp, always to the alignment
within 45 degrees of the start heading (A's yaw modulo a quarter turn). A is carried and set on B at whatever
relative yaw it has (a cube rests level on a cube at any yaw).
The phase is a function of the current state alone (what the fingers hold, where A is relative to the tool and
to B), never of the episode's history: a policy that sees one timestep can imitate it, and it labels any state a
learner drives into (DAgger) with the action it would take there. (A phase machine that remembered "I reached
the hover point" labelled a policy's own grasp with "open, and go to the hover point above the block in your
hand", which drove it away.)
"""

import enum
import math
from dataclasses import dataclass

import numpy as np

from gato_ros.core.robots import CartesianActionSpace


START_HEADING = 0.0   # rad: the tool yaw of every robot's start pose (SimConfig.start_offset moves it, never turns it)


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
    position_tolerance: float = 0.004  # m: close enough to a target (grasp depth, release height, retreat)
    align_tolerance: float = 0.01  # m: tool this close (xy) above A, or A above B, to go down
    yaw_tolerance: float = 0.1     # rad: fingers and A's faces this aligned to descend for the grasp
    lift_margin: float = 0.02      # m: a held A more than this below the carry height is lifted straight up
    funnel_radius: float = 0.04    # m: within this (xy) of A the tool centres over it at its own height, rising
                                   # only to clear A's top, instead of going back to the hover point
    clearance: float = 0.015       # m: fingertips this far above A's top may move sideways over it
    close_band: float = 0.015      # m: fingers already closing on A keep closing up to this far above the grasp
                                   # point (a learner drifting up while closing is not labelled "open")
    align: bool = False            # turn the fingers to A's faces before descending (else keep the start heading)
    held_closure: float = 0.3      # gripper closure at which the fingers hold A (a 5 cm block settles at ~0.42)
    missed_closure: float = 0.9    # closure past which the fingers closed on nothing
    open_closure: float = 0.05     # closure below which the fingers have let go
    lost_distance: float = 0.04    # A farther than this (plus half a block) from the tool is not held (m)

    def __post_init__(self):
        for field in ('hover', 'grasp_depth', 'gain', 'yaw_gain', 'position_tolerance', 'align_tolerance',
                      'yaw_tolerance', 'lift_margin', 'funnel_radius', 'clearance', 'close_band', 'lost_distance'):
            if not getattr(self, field) > 0:
                raise ValueError(f'ExpertConfig.{field}={getattr(self, field)!r} is invalid; allowed: > 0')
        if not self.drop >= 0:
            raise ValueError(f'ExpertConfig.drop={self.drop!r} is invalid; allowed: >= 0')
        if not 0 < self.open_closure < self.held_closure < self.missed_closure < 1:
            raise ValueError('ExpertConfig closures must satisfy 0 < open_closure < held_closure < missed_closure < 1, '
                             f'got {self.open_closure}, {self.held_closure}, {self.missed_closure}')


class ScriptedExpert:
    """act(observation) -> action; observation.state is a SimState (block poses are privileged information).
    `phase` is the phase of the last act() call (for reports and tests)."""

    def __init__(self, task=('red', 'blue'), block_size: float = 0.05,
                 action_space: CartesianActionSpace = CartesianActionSpace(), config: ExpertConfig = ExpertConfig()):
        self.top, self.bottom = task
        self.block_size, self.action_space, self.config = block_size, action_space, config
        self.reset()

    def reset(self) -> None:
        self.phase = Phase.APPROACH

    def phase_of(self, state) -> Phase:
        """The phase for this state (a SimState), from the state alone."""
        cfg, size = self.config, self.block_size
        a, b, tool = state.blocks[self.top], state.blocks[self.bottom], state.tool_pos
        a_over_b = math.dist(a.position[:2], b.position[:2]) < cfg.align_tolerance
        a_on_b = a_over_b and a.position[2] - b.position[2] - size < cfg.drop + cfg.position_tolerance
        if a_on_b:
            if state.gripper > cfg.open_closure:
                return Phase.OPEN
            return Phase.DONE if self._reached(self._retreat_target(state) - tool) else Phase.RETREAT
        held = (cfg.held_closure <= state.gripper < cfg.missed_closure
                and np.linalg.norm(a.position - tool) < cfg.lost_distance + size / 2)
        if held:
            if a_over_b:
                return Phase.LOWER
            return Phase.LIFT if tool[2] < self._carry_z(state) - cfg.lift_margin else Phase.MOVE
        above_a = (math.dist(tool[:2], a.position[:2]) < cfg.align_tolerance
                   and (not cfg.align or abs(self._turn(state)) < cfg.yaw_tolerance)
                   and tool[2] < self._hover_z(state) + cfg.position_tolerance)
        if not above_a or state.gripper >= cfg.missed_closure:   # fully closed fingers missed: open, go back up
            return Phase.APPROACH
        above_grasp = tool[2] - self._grasp_z(state)
        closing = state.gripper > cfg.open_closure and above_grasp < cfg.close_band
        return Phase.CLOSE if above_grasp < cfg.position_tolerance or closing else Phase.DESCEND

    def act(self, observation) -> np.ndarray:
        state = observation.state
        self.phase = phase = self.phase_of(state)
        a, b, tool = state.blocks[self.top], state.blocks[self.bottom], state.tool_pos
        grip, target, yaw = -1.0, tool.copy(), 0.0
        if phase is Phase.APPROACH:
            target = self._approach_target(state)
            yaw = self._turn(state)
        elif phase is Phase.DESCEND:
            target = np.r_[a.position[:2], self._grasp_z(state)]
            yaw = self._turn(state)
        elif phase is Phase.CLOSE:
            grip = 1.0
        elif phase is Phase.LIFT:
            grip, target = 1.0, np.r_[tool[:2], self._carry_z(state)]
        elif phase is Phase.MOVE:
            grasp = a.position - tool   # block centre relative to the tool while held
            grip, target = 1.0, np.r_[b.position[:2] - grasp[:2], self._carry_z(state)]
        elif phase is Phase.LOWER:
            a_target = np.r_[b.position[:2], b.position[2] + self.block_size + self.config.drop]
            grip, target = 1.0, tool + (a_target - a.position)
        elif phase in (Phase.RETREAT, Phase.DONE):
            target = self._retreat_target(state)
        return self._action(target - tool, yaw, grip)

    # ---- targets ---------------------------------------------------------------------------------------
    def _turn(self, state) -> float:
        """rad the tool still has to turn, the short way round: to A's yaw (already modulo a quarter turn) when
        aligning, else back to the start heading."""
        goal = state.blocks[self.top].yaw if self.config.align else START_HEADING
        return math.remainder(goal - state.tool_yaw, 2 * math.pi)

    def _hover_z(self, state) -> float:
        a = state.blocks[self.top]
        return a.position[2] + self.block_size / 2 + self.config.hover

    def _grasp_z(self, state) -> float:
        a = state.blocks[self.top]
        return a.position[2] + self.block_size / 2 - self.config.grasp_depth

    def _approach_target(self, state) -> np.ndarray:
        cfg, a, tool = self.config, state.blocks[self.top], state.tool_pos
        if math.dist(tool[:2], a.position[:2]) >= cfg.funnel_radius:
            return np.r_[a.position[:2], self._hover_z(state)]
        clear_z = a.position[2] + self.block_size / 2 + cfg.clearance
        if tool[2] < clear_z:              # fingertips beside A: straight up before any sideways move, to just past
            return np.r_[tool[:2], clear_z + cfg.position_tolerance]   # clear_z (a tool settling at it stalled)
        return np.r_[a.position[:2], min(tool[2], self._hover_z(state))]

    def _carry_z(self, state) -> float:
        return state.blocks[self.bottom].position[2] + 2 * self.block_size + self.config.hover

    def _retreat_target(self, state) -> np.ndarray:
        return np.r_[state.tool_pos[:2], self._hover_z(state)]

    def _reached(self, error: np.ndarray) -> bool:
        return bool(np.max(np.abs(error)) < self.config.position_tolerance)

    def _action(self, error: np.ndarray, yaw_error: float, grip: float) -> np.ndarray:
        """Proportional velocity toward the target, scaled (not clipped per axis) to keep the direction."""
        velocity = self.config.gain * error / self.action_space.max_linear_speed
        velocity /= max(1.0, float(np.max(np.abs(velocity))))
        yaw_rate = float(np.clip(self.config.yaw_gain * yaw_error / self.action_space.max_yaw_rate, -1.0, 1.0))
        return np.r_[velocity, yaw_rate, grip]
