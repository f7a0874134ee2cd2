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

* With link geometry (`links`, e.g. gato_ros.core.robots.LinkGeometry), every moving link's collision geometry is
  checked against the table plane and the link box at the same points as the tool. A cheap bound skips the check
  when no point of the arm can move far enough to reach a bound (reach @ |dq| against the last computed clearance).
* Measured state: q outside the URDF limits plus `state_tolerance`, or moving faster than the velocity limit since
  the previous sample (plus `jump_tolerance`), is invalid input: brake at once. `reset` refuses such a q;
  `request_reset` re-synchronises to the measured q only within `resync_tolerance` of the last command.
* `track_measured` (velocity interface): every tick starts from the measured position (advanced by the last
  velocity command over the observation age), so the limits are checked where the arm really is; a measured
  position farther than `tracking_error_limit` from where the last command should have taken it brakes to rest.

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
_LINK_CACHE = 6        # exact link checks remembered for the motion bound


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

    def __init__(self, config: SafetyConfig, tool_position: Callable[[np.ndarray], np.ndarray], links=None):
        """`links`: optional callable q -> (tool (3,), lower (k, 3), upper (k, 3)) of the moving links' collision
        geometry, with attributes `names`, `owner` (k,) (point -> name index) and `reach` (n,) (m per rad)."""
        self.config = config
        self._fk = tool_position
        self._links = links
        link_min, link_max = config.link_bounds
        # Only the axes with a bound are computed (by default z, the table plane).
        self._link_axes = tuple(int(i) for i in np.flatnonzero(np.isfinite(link_min) | np.isfinite(link_max)))
        self._link_min, self._link_max = link_min[list(self._link_axes)], link_max[list(self._link_axes)]
        # Recent exact link checks (a ring): configurations and their clearance to the link bounds (-inf: empty).
        self._cache_q = np.zeros((_LINK_CACHE, len(config.joint_names)))
        self._cache_clearance = np.full(_LINK_CACHE, -math.inf)
        self._cache_next = 0
        self._sample: tuple[np.ndarray, float] | None = None  # last plausible measured (q, sample time)
        self._state_lo, self._state_hi = config.state_bounds
        self._track_base: tuple[np.ndarray, float] | None = None  # velocity interface: (integrated command, time)
        self._tracking_fault = ''                 # latched until request_reset()
        self._horizon = config.max_dt             # velocity interface: recent longest tick interval, >= max_dt
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
        bad = self._outside_state_bounds(v)
        if bad:
            raise ValueError(f'SafetyFilter.reset: {bad}: refusing to start from it')
        self._position = v.copy()
        self._velocity = np.zeros(self._n)
        self._tool = np.asarray(self._fk(self._position), dtype=np.float64)
        self._cache_clearance[:] = -math.inf
        self._sample = None
        self._track_base = None
        self._tracking_fault = ''
        self._time = None
        self._latest_stamp = -math.inf  # a new episode's clock may restart (sim time starts at 0 again)

    def restart_clock(self) -> bool:
        """Accept a tick time earlier than the last one from the next tick on (a clock that jumped back), keeping
        the commanded position. Only at rest (the caller brakes first); returns whether it was done."""
        if self._velocity.any():
            return False
        self._time = None
        self._sample = None
        self._track_base = None
        self._latest_stamp = -math.inf
        return True

    def _outside_state_bounds(self, q: np.ndarray) -> str:
        """'' when q lies inside the URDF limits plus state_tolerance, else the reason naming the joint."""
        out = np.flatnonzero((q < self._state_lo) | (q > self._state_hi))
        if out.size == 0:
            return ''
        i = int(out[0])
        cfg = self.config
        return (f'measured {cfg.joint_names[i]} = {q[i]:.4f} rad is outside its URDF limits [{cfg.lower[i]:.4f}, '
                f'{cfg.upper[i]:.4f}] + state_tolerance {cfg.state_tolerance} rad')

    def request_reset(self) -> tuple[bool, str]:
        """Clear the e-stop (and tracking-error) latch, only when the e-stop is released, the command has stopped and
        the arm is at rest.

        On success the commanded position is re-synchronised to the last measured one, so the arm does not jump
        back to where the command stopped if it came to rest a little elsewhere (brakes, protective stop). The
        measured position must be plausible and within resync_tolerance (one step bound) of the command: the
        re-sync itself is then no larger than a tick's step; farther away it is refused.
        """
        if not self._estop_latched and not self._tracking_fault:
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
        bad = self._outside_state_bounds(q)
        if bad:
            return False, f'refused: {bad}'
        offset = np.abs(q - self._position)
        far = np.flatnonzero(offset > self.config.resync_tolerance)
        if far.size:
            i = int(far[0])
            return False, (f'refused: measured {self.config.joint_names[i]} is {offset[i]:.4f} rad from the last '
                           f'command, more than resync_tolerance {self.config.resync_tolerance[i]:.4f} rad: '
                           're-synchronising would jump (move the arm back, or restart the controller at rest)')
        self._estop_latched = False
        self._tracking_fault = ''
        self._position = q.copy()  # a change of at most resync_tolerance (default: one tick's step bound)
        self._tool = np.asarray(self._fk(self._position), dtype=np.float64)
        self._cache_clearance[:] = -math.inf
        self._track_base = None
        return True, (f'latch cleared; command re-synchronised to the measured position '
                      f'({float(offset.max()):.4f} rad from the last command)')

    def tick(self, now: float, q, qd, proposal: Proposal | None, observation_age: float,
             speed_scale: float = 1.0, estop: bool = False,
             fault: tuple[SafetyStatus, str] | None = None) -> SafetyOutput:
        """One control tick at time `now` (s): the command to send and why.

        `fault`: (STALE_INPUT or INVALID_INPUT, reason) for a fault the caller found (a rejected message, a stalled
        clock): brake with that status and reason. An e-stop still takes precedence."""
        if self._position is None:
            raise RuntimeError('SafetyFilter.tick called before reset(q): there is no commanded state yet')
        self._estop_input = bool(estop)
        self._estop_latched |= self._estop_input
        now = _scalar(now)
        if math.isfinite(now) and (self._time is None or now > self._time):
            # The velocity interface integrates the real interval (the arm ran the last command all along it).
            longest = self.config.stale_timeout if self.config.track_measured else self.config.max_dt
            dt = 0.0 if self._time is None else min(now - self._time, longest)
            if self._time is not None:  # decays by half in ~350 ticks
                self._horizon = min(max(self.config.max_dt, now - self._time, self._horizon * 0.998),
                                    self.config.stale_timeout)
            self._time = now
            clock = ''
        else:  # a broken clock must not keep the arm moving: assume one nominal tick and brake
            dt = self.config.dt
            clock = f'tick time {now} is not after the previous tick {self._time}: braking at the nominal period'
        q, qd = _vector(q, self._n), _vector(qd, self._n)
        self._measured = None if q is None or qd is None or fault is not None else (q, qd)
        if fault is not None and not self._estop_latched:
            status, reason = fault
            if status not in (SafetyStatus.STALE_INPUT, SafetyStatus.INVALID_INPUT):
                status, reason = SafetyStatus.INVALID_INPUT, f'{status.name}: {reason}'
            scale = 0.0
        elif clock and not self._estop_latched:
            status, reason, scale = SafetyStatus.INVALID_INPUT, clock, 0.0
        else:
            status, reason, scale = self._judge_inputs(now, q, qd, proposal, observation_age, speed_scale)
        if self.config.track_measured:
            status, reason, scale = self._track_measured(now, dt, q, observation_age, status, reason, scale)
        elif math.isfinite(self.config.tracking_error_limit) and self._measured is not None:
            error = np.abs(q - self._position)
            i = int(np.argmax(error))
            if error[i] > self.config.tracking_error_limit:
                self._tracking_fault = (f'tracking error: measured {self.config.joint_names[i]} is {error[i]:.4f} rad '
                                        f'from the command (tracking_error_limit {self.config.tracking_error_limit} '
                                        'rad): braking to rest; latched until request_reset()')
            if self._tracking_fault and status not in (SafetyStatus.ESTOP, SafetyStatus.INVALID_INPUT):
                status, reason, scale = SafetyStatus.INVALID_INPUT, self._tracking_fault, 0.0
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
            if q is not None and (self._outside_state_bounds(q) or self._jump(q, now - _scalar(observation_age))):
                self._measured = None  # an implausible sample can never be re-synchronised to
            return SafetyStatus.ESTOP, ('e-stop asserted' if self._estop_input else
                                        'e-stop latched: braking to a hold; request_reset() to clear'), 0.0
        if q is None:
            return invalid, f'measured q is not {self._n} finite joint positions: rejected, braking', 0.0
        if qd is None:
            return invalid, f'measured qd is not {self._n} finite joint velocities: rejected, braking', 0.0
        age = _scalar(observation_age)
        if not math.isfinite(age):
            return invalid, f'observation_age {observation_age!r} is not finite: braking', 0.0
        bad = self._outside_state_bounds(q)
        if bad:
            self._measured = None
            return invalid, f'{bad}: rejected, braking', 0.0
        jump = self._jump(q, now - age)
        if jump:
            self._measured = None
            return invalid, f'{jump}: rejected, braking', 0.0
        scale = _scalar(speed_scale)
        if not 0.0 <= scale <= 1.0:
            return invalid, f'speed_scale {speed_scale!r} is not in [0, 1]: treated as 0, braking', 0.0
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

    def _jump(self, q: np.ndarray, sampled: float) -> str:
        """'' when q is reachable from the last plausible sample at the velocity limits, else the reason."""
        cfg = self.config
        if self._sample is not None:
            previous, t = self._sample
            elapsed = max(sampled - t, 0.0)
            step = np.abs(q - previous)
            excess = step - (cfg.velocity * elapsed + cfg.jump_tolerance)
            i = int(np.argmax(excess))
            if excess[i] > 0.0:
                return (f'measured {cfg.joint_names[i]} moved {step[i]:.4f} rad in {elapsed:.4f} s, faster than its '
                        f'velocity limit {cfg.velocity[i]:.4f} rad/s allows (+ jump_tolerance {cfg.jump_tolerance} '
                        'rad)')
            if sampled < t:
                return ''  # an older sample than the one kept: plausible, but not a newer reference
        self._sample = (q, sampled)
        return ''

    def _track_measured(self, now, dt, q, observation_age, status, reason, scale):
        """Velocity interface: move the base of this tick to the measured position and judge the tracking error."""
        cfg = self.config
        if self._measured is None or dt == 0.0:
            return status, reason, scale
        age = min(max(_scalar(observation_age), 0.0), cfg.stale_timeout)
        base = q + self._velocity * age  # where the last velocity command has taken the arm since the sample
        if self._track_base is None or not self._velocity.any():
            reference = base  # at rest: the reference restarts from the measured position
        else:  # the integrated command: where the velocity commands should have taken the arm
            previous, t = self._track_base
            reference = previous + self._velocity * max(now - t, 0.0)
            error = np.abs(base - reference)
            i = int(np.argmax(error))
            if error[i] > cfg.tracking_error_limit:
                self._tracking_fault = (f'tracking error: measured {cfg.joint_names[i]} is {error[i]:.4f} rad from '
                                        'where the velocity commands should have taken it (tracking_error_limit '
                                        f'{cfg.tracking_error_limit} rad): braking to rest; latched until '
                                        'request_reset()')
        self._track_base = (reference, now)
        self._position = base
        self._tool = np.asarray(self._fk(base), dtype=np.float64)
        if self._tracking_fault and status not in (SafetyStatus.ESTOP, SafetyStatus.INVALID_INPUT):
            return SafetyStatus.INVALID_INPUT, self._tracking_fault, 0.0
        return status, reason, scale

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
        self._link_relaxed = None
        if self._links is not None:
            lo, hi = self._link_min, self._link_max
            if not self._link_provably_inside(p):  # the commanded position may lie outside: relax to it
                lo, hi = self._link_extents(p)
            self._link_relaxed = (np.minimum(self._link_min - _TOLERANCE, lo),
                                  np.maximum(self._link_max + _TOLERANCE, hi))

    def _link_provably_inside(self, q: np.ndarray) -> bool:
        """True when a recent exact check shows every link inside the nominal bounds at q: its clearance exceeds the
        farthest any geometry point can have moved since (reach @ |q - q_checked|)."""
        return bool((self._cache_clearance - np.abs(q - self._cache_q) @ self._links.reach > _TOLERANCE).any())

    def _remember(self, q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> None:
        i = self._cache_next
        self._cache_q[i] = q
        self._cache_clearance[i] = min((lo - self._link_min).min(), (self._link_max - hi).min())
        self._cache_next = (i + 1) % _LINK_CACHE

    def _link_extents(self, q: np.ndarray):
        """(lowest, highest) link geometry point per bounded axis at q (k, a), remembered for the bound above."""
        _, lo, hi = self._links(q, self._link_axes)
        self._remember(q, lo, hi)
        return lo.min(axis=0), hi.max(axis=0)

    def _link_violation(self, p_new: np.ndarray, stop: np.ndarray, explain: bool) -> str | None:
        """None when every link stays inside (this tick's relaxed) link bounds at p_new, the stop point and, for long
        braking segments, their midpoint (the tool's points); a point is evaluated only when no recent exact check
        proves it inside."""
        lo_bound, hi_bound = self._link_relaxed
        points = [p_new]
        if (stop - p_new).any():
            points.append(stop)
            if float(np.abs(stop - p_new).max()) > _MIDPOINT_SPAN:
                points.append(0.5 * (p_new + stop))
        for point in points:
            if self._link_provably_inside(point):
                continue
            _, lo, hi = self._links(point, self._link_axes)
            below, above = lo_bound - lo, hi - hi_bound
            if (below > 0).any() or (above > 0).any():
                return self._link_reason(lo, hi, below, above) if explain else ''
            self._remember(point, lo, hi)
        return None

    def _link_reason(self, lo, hi, below, above) -> str:
        worst = np.maximum(below, above)
        k, column = np.unravel_index(int(np.argmax(worst)), worst.shape)
        name = self._links.names[int(self._links.owner[k])]
        axis = self._link_axes[column]
        a = 'xyz'[axis]
        if below[k, column] >= above[k, column]:
            if axis == 2 and self._link_min[column] == self.config.table_height + self.config.table_clearance:
                return (f'link {name} z {lo[k, column]:.4f} m would go below the table plane '
                        f'{self.config.table_height} m + clearance {self.config.table_clearance} m')
            return (f'link {name} {a} {lo[k, column]:.4f} m would leave the link box below {a}_min '
                    f'{self._link_min[column]} m')
        return (f'link {name} {a} {hi[k, column]:.4f} m would leave the link box above {a}_max '
                f'{self._link_max[column]} m')

    def _violation(self, v: np.ndarray, dt: float, explain: bool = False):
        """(None, tool position at P + v*dt) for an admissible velocity, else ((is_joint, reason), None);
        the reason is only spelled out when `explain` (the bisection needs the verdict alone)."""
        lower, upper, box_min, box_max = self._relaxed
        # Velocity interface: the arm runs this velocity until the next command arrives: assume the longest recent
        # tick interval (at least max_dt), since a loop that was late may be late again.
        p_new = self._position + v * (self._horizon if self.config.track_measured else dt)
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
        if self._links is not None:
            why = self._link_violation(p_new, stop, explain)
            if why is not None:
                return (False, why), None
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
