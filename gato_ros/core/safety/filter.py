"""SafetyFilter: the last code between a learned policy and the arm.

It owns the commanded state (position P, velocity V) and only ever changes it in ways it can prove safe:

* Every tick picks V_new with |V_new - V| <= a * dt and |V_new| <= speed limit, then P_new = P + V_new * dt.
* Braking plan: from any commanded state the arm can stop by scaling all joint velocities down together at the
  acceleration limit ("common braking": the path is kept, the slowest joint sets the stop time T = max|v|/a). The
  positions it passes lie on the straight joint-space segment from P_new to the stop point S = P_new + V_new*T/2.
* Invariant: S lies inside the joint bounds (exact: the bound box is convex, so the whole segment does) and the
  tool, by FK at P_new, S and, for long segments, their midpoint, lies inside the workspace box above the table.
  A tick of common braking keeps S on the previous segment, so braking is always admissible: it is the fallback.
* A tick's candidate motion (the tracked proposal) is accepted whole when admissible; otherwise the filter takes
  the largest admissible fraction between braking and the candidate (bisection), which slows the arm along its
  path to a stop at the bound, and reports DECELERATE_FOR_* or *_BOUND.

Time is passed in; nothing here reads a clock.
"""

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from gato_ros.core.safety.config import SafetyConfig
from gato_ros.core.safety.proposal import Proposal
from gato_ros.core.safety.status import SafetyStatus

_BISECTIONS = 6        # the admissible fraction of a limited motion is found to 1/64
_MIDPOINT_SPAN = 0.02  # rad: braking segments longer than this get an FK check at their midpoint too
_TOLERANCE = 1e-9      # rounding slack on bound checks (rad, m)


@dataclass(frozen=True, eq=False)
class SafetyOutput:
    """The command for one tick."""

    positions: np.ndarray   # (n,) commanded joint positions (rad) = previous positions + velocities * dt
    velocities: np.ndarray  # (n,) commanded joint velocities (rad/s)
    status: SafetyStatus
    reason: str             # names the joint, face or input at fault; '' when OK


def _vector(x, n: int) -> np.ndarray | None:
    """x as n finite floats, or None."""
    try:
        v = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return v if v.shape == (n,) and np.isfinite(v).all() else None


def _scalar(x) -> float:
    """x as a float, NaN when it is not a number."""
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


class SafetyFilter:
    """Limits, watchdog and e-stop latch on the commanded joint trajectory (see the module docstring)."""

    def __init__(self, config: SafetyConfig, tool_position: Callable[[np.ndarray], np.ndarray]):
        self.config = config
        self._fk = tool_position
        self._n = len(config.joint_names)
        self._lower, self._upper = config.position_bounds
        self._box_min, self._box_max = config.tool_bounds
        self._span = self._upper - self._lower
        self._speed = config.speed_limit
        self._accel = config.acceleration
        self._inv_accel = 1.0 / config.acceleration
        self._position: np.ndarray | None = None  # commanded state
        self._velocity = np.zeros(self._n)
        self._tool: np.ndarray | None = None      # FK of the commanded position
        self._time: float | None = None           # `now` of the last integrated tick
        self._estop_latched = False
        self._estop_input = False
        self._measured: tuple[np.ndarray, np.ndarray] | None = None  # last valid (q, qd)
        self._latest_stamp = -math.inf            # newest accepted proposal stamp
        self._checked: Proposal | None = None     # last proposal that passed the shape/finite/order checks
        self._relaxed: tuple = ()                 # this tick's bounds (see _relax_bounds)

    @property
    def position(self) -> np.ndarray:
        return None if self._position is None else self._position.copy()

    @property
    def velocity(self) -> np.ndarray:
        return self._velocity.copy()

    @property
    def estop_latched(self) -> bool:
        return self._estop_latched

    def reset(self, q: np.ndarray) -> None:
        """Start from the measured position q at rest (start-up, new episode). Keeps an e-stop latch; raises on
        bad q."""
        v = _vector(q, self._n)
        if v is None:
            raise ValueError(f'SafetyFilter.reset: q must be {self._n} finite joint positions for '
                             f'{self.config.joint_names}, got {q!r}')
        self._position = v.copy()
        self._velocity = np.zeros(self._n)
        self._tool = np.asarray(self._fk(self._position), dtype=np.float64)
        self._time = None
        self._latest_stamp = -math.inf  # a new episode's clock may restart (sim time starts at 0 again)

    def request_reset(self) -> tuple[bool, str]:
        """Clear the e-stop latch, only when the e-stop is released, the command has stopped and the arm is at rest.

        On success the commanded position is re-synchronised to the last measured one, so the arm does not jump
        back to where the command stopped if it came to rest elsewhere (brakes, protective stop).
        """
        if not self._estop_latched:
            return True, 'no e-stop latched'
        if self._estop_input:
            return False, 'refused: the e-stop input is still asserted'
        speed = float(np.abs(self._velocity).max())
        if speed > 0.0:
            return False, f'refused: the command is still braking (|v| = {speed:.4f} rad/s)'
        if self._measured is None:
            return False, 'refused: the last measured joint state was invalid'
        q, qd = self._measured
        moving = float(np.abs(qd).max())
        if moving > self.config.rest_velocity:
            return False, (f'refused: the arm is moving (measured |qd| = {moving:.4f} rad/s > rest_velocity '
                           f'{self.config.rest_velocity})')
        self._estop_latched = False
        self._position = q.copy()
        self._tool = np.asarray(self._fk(self._position), dtype=np.float64)
        return True, 'e-stop cleared; command re-synchronised to the measured position'

    def tick(self, now: float, q, qd, proposal: Proposal | None, observation_age: float,
             speed_scale: float = 1.0, estop: bool = False) -> SafetyOutput:
        """One control tick at time `now` (s): the command to send and why."""
        if self._position is None:
            raise RuntimeError('SafetyFilter.tick called before reset(q): there is no commanded state yet')
        self._estop_input = bool(estop)
        self._estop_latched |= self._estop_input
        now = _scalar(now)
        if math.isfinite(now) and (self._time is None or now > self._time):
            dt = 0.0 if self._time is None else min(now - self._time, self.config.max_dt)
            self._time = now
            clock = ''
        else:  # a broken clock must not keep the arm moving: assume one nominal tick and brake
            dt = self.config.dt
            clock = f'tick time {now} is not after the previous tick {self._time}: braking at the nominal period'
        q, qd = _vector(q, self._n), _vector(qd, self._n)
        self._measured = None if q is None or qd is None else (q, qd)
        if clock and not self._estop_latched:
            status, reason, scale = SafetyStatus.INVALID_INPUT, clock, 0.0
        else:
            status, reason, scale = self._judge_inputs(now, q, qd, proposal, observation_age, speed_scale)
        if dt == 0.0:  # first tick after reset: nothing to integrate, the command stays at rest
            return self._output(status, reason)

        brake = self._brake(dt)
        if status is not SafetyStatus.OK:
            return self._commit(brake, dt, None, status, reason)
        self._relax_bounds()
        candidate = self._track(now, dt, proposal, scale)
        violation, tool = self._violation(candidate, dt, explain=True)
        if violation is None:
            return self._commit(candidate, dt, tool, SafetyStatus.OK, '')
        # Largest admissible fraction of the way from braking to the candidate.
        lo, hi, best, best_tool = 0.0, 1.0, brake, None
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            v = brake + mid * (candidate - brake)
            bad, tool = self._violation(v, dt)
            if bad is None:
                lo, best, best_tool = mid, v, tool
            else:
                hi = mid
        joint, why = violation
        holding = float(np.abs(best).max()) <= self.config.rest_velocity
        if joint:
            status = SafetyStatus.JOINT_BOUND if holding else SafetyStatus.DECELERATE_FOR_JOINT_BOUND
        else:
            status = SafetyStatus.WORKSPACE_BOUND if holding else SafetyStatus.DECELERATE_FOR_WORKSPACE
        return self._commit(best, dt, best_tool, status, f'{why}: {"holding" if holding else "slowing"}')

    # -- inputs ---------------------------------------------------------------------------------------------------

    def _judge_inputs(self, now, q, qd, proposal, observation_age, speed_scale):
        """(status, reason, speed scale) for this tick's inputs; status OK means track the proposal."""
        cfg, stale, invalid = self.config, SafetyStatus.STALE_INPUT, SafetyStatus.INVALID_INPUT
        if self._estop_latched:
            return SafetyStatus.ESTOP, ('e-stop asserted' if self._estop_input else
                                        'e-stop latched: braking to a hold; request_reset() to clear'), 0.0
        if q is None:
            return invalid, f'measured q is not {self._n} finite joint positions: rejected, braking', 0.0
        if qd is None:
            return invalid, f'measured qd is not {self._n} finite joint velocities: rejected, braking', 0.0
        scale = _scalar(speed_scale)
        if not 0.0 <= scale <= 1.0:
            return invalid, f'speed_scale {speed_scale!r} is not in [0, 1]: treated as 0, braking', 0.0
        age = _scalar(observation_age)
        if not math.isfinite(age):
            return invalid, f'observation_age {observation_age!r} is not finite: braking', 0.0
        if proposal is not None and proposal is not self._checked:
            if proposal.positions.shape[1] != self._n:
                return invalid, (f'proposal has {proposal.positions.shape[1]} joints, expected {self._n} '
                                 f'{self.config.joint_names}: rejected, braking'), 0.0
            if not (math.isfinite(proposal.stamp) and np.isfinite(proposal.times).all()
                    and np.isfinite(proposal.positions).all()):
                return invalid, 'proposal has non-finite stamp, times or positions: rejected, braking', 0.0
            if (np.diff(proposal.times) <= 0).any():
                return stale, 'proposal times are not increasing: rejected, braking', 0.0
            self._checked = proposal
        if abs(age) > cfg.stale_timeout:
            return stale, f'observation age {age:.3f} s exceeds stale_timeout {cfg.stale_timeout} s: braking', 0.0
        if proposal is None:
            return stale, 'no proposal: braking to a hold', 0.0
        if abs(now - proposal.stamp) > cfg.stale_timeout:
            return stale, (f'proposal age {now - proposal.stamp:.3f} s exceeds stale_timeout '
                           f'{cfg.stale_timeout} s: braking'), 0.0
        if proposal.stamp < self._latest_stamp:
            return stale, (f'proposal stamp {proposal.stamp:.3f} is older than the one already used '
                           f'({self._latest_stamp:.3f}): braking'), 0.0
        if proposal.times[-1] < now - cfg.stale_timeout:
            return stale, 'proposal times all lie in the past: braking', 0.0
        self._latest_stamp = proposal.stamp
        return SafetyStatus.OK, '', scale

    # -- motion ---------------------------------------------------------------------------------------------------

    def _brake(self, dt: float) -> np.ndarray:
        """Common braking: all joints slowed together, the one with the longest stop at its acceleration limit."""
        v = self._velocity
        t_stop = float((np.abs(v) * self._inv_accel).max())
        return np.zeros(self._n) if t_stop <= dt else v * (1.0 - dt / t_stop)

    def _track(self, now: float, dt: float, proposal: Proposal, scale: float) -> np.ndarray:
        """Velocity that follows the proposal within the scaled speed and acceleration budgets."""
        if scale == 0.0:
            return self._brake(dt)
        # Targets beyond the bounds are kept (the bound checks report them) but clipped to one joint range past
        # them, so huge values cannot overflow the arithmetic below.
        lower, upper = self._relaxed[0] - self._span, self._relaxed[1] + self._span
        nominal = self.config.dt
        target = np.clip(proposal.sample(now), lower, upper)
        feedforward = (np.clip(proposal.sample(now + nominal), lower, upper) - target) / nominal
        error = target - self._position - feedforward * dt
        # Correct the error no faster than it can be braked away at the scaled acceleration: no overshoot.
        over = math.sqrt(float((np.abs(error) * self._inv_accel).max()) / (2.0 * scale)) / dt
        v = feedforward + error / (dt * max(over, 1.0))
        over = float((np.abs(v) / self._speed).max()) / scale   # speed limit: all joints scaled together
        if over > 1.0:
            v = v / over
        dv = v - self._velocity
        braking = (v * self._velocity >= 0.0) & (np.abs(v) <= np.abs(self._velocity))
        budget = self._accel * dt * np.where(braking, 1.0, scale)  # braking always gets the full rate
        over = float((np.abs(dv) / budget).max())
        return self._velocity + (dv / over if over > 1.0 else dv)

    def _relax_bounds(self) -> None:
        """Bounds for this tick (with the rounding slack), relaxed to the commanded position and its tool point
        where they lie outside (a start outside): then only motion that does not increase the violation passes."""
        p, x = self._position, self._tool
        # The slack is added to the bound, not to the position: relaxing to p - slack would let a command resting
        # in the slack creep one slack further out every tick.
        self._relaxed = (np.minimum(self._lower - _TOLERANCE, p), np.maximum(self._upper + _TOLERANCE, p),
                         np.minimum(self._box_min - _TOLERANCE, x), np.maximum(self._box_max + _TOLERANCE, x))

    def _violation(self, v: np.ndarray, dt: float, explain: bool = False):
        """(None, tool position at P + v*dt) for an admissible velocity, else ((is_joint, reason), None);
        the reason is only spelled out when `explain` (the bisection needs the verdict alone)."""
        lower, upper, box_min, box_max = self._relaxed
        p_new = self._position + v * dt
        t_stop = float((np.abs(v) * self._inv_accel).max())
        stop = p_new + v * (0.5 * t_stop)
        if (stop < lower).any() or (stop > upper).any():
            return (True, self._joint_reason(stop) if explain else ''), None
        tool_new = None
        for point in (p_new, stop, 0.5 * (p_new + stop)):
            x = np.asarray(self._fk(point), dtype=np.float64)
            if (x < box_min).any() or (x > box_max).any():
                return (False, self._workspace_reason(x) if explain else ''), None
            if tool_new is None:
                tool_new = x
                if t_stop == 0.0:
                    break
            elif float(np.abs(stop - p_new).max()) <= _MIDPOINT_SPAN:
                break
        return None, tool_new

    def _joint_reason(self, stop: np.ndarray) -> str:
        below, above = self._relaxed[0] - stop, stop - self._relaxed[1]
        i = int(np.argmax(np.maximum(below, above)))
        side, bound = ('lower', self._lower[i]) if below[i] > above[i] else ('upper', self._upper[i])
        return (f'{self.config.joint_names[i]} cannot stop before its {side} bound {bound:.4f} rad '
                f'(limit minus margin {self.config.margin})')

    def _workspace_reason(self, x: np.ndarray) -> str:
        below, above = self._relaxed[2] - x, x - self._relaxed[3]
        i = int(np.argmax(np.maximum(below, above)))
        axis = 'xyz'[i]
        if below[i] > above[i]:
            table = self.config.table_height + self.config.table_clearance
            if i == 2 and self._box_min[2] == table:
                return (f'tool z {x[2]:.4f} m would go below the table plane {self.config.table_height} m '
                        f'+ clearance {self.config.table_clearance} m')
            return f'tool {axis} {x[i]:.4f} m would leave the workspace below {axis}_min {self._box_min[i]} m'
        return f'tool {axis} {x[i]:.4f} m would leave the workspace above {axis}_max {self._box_max[i]} m'

    # -- output ---------------------------------------------------------------------------------------------------

    def _commit(self, v: np.ndarray, dt: float, tool, status: SafetyStatus, reason: str) -> SafetyOutput:
        self._position = self._position + v * dt
        self._velocity = v
        self._tool = np.asarray(self._fk(self._position), dtype=np.float64) if tool is None else tool
        return self._output(status, reason)

    def _output(self, status: SafetyStatus, reason: str) -> SafetyOutput:
        return SafetyOutput(self._position.copy(), self._velocity.copy(), status, reason)
