"""SafetyConfig: the envelope the filter enforces, built from a RobotProfile (limits come from the URDF)."""

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

UR_COMMAND_TIMEOUT = 0.040  # s: a UR e-Series stops its program after this long without a command
_PER_JOINT = ('lower', 'upper', 'velocity', 'acceleration', 'max_step', 'resync_tolerance')


@dataclass(frozen=True, eq=False)
class SafetyConfig:
    """Every limit the safety filter enforces. Per-joint arrays are in controller joint order."""

    joint_names: tuple[str, ...]   # arm joints, controller order (names appear in reasons)
    lower: np.ndarray              # (n,) position lower limits (rad), before the margin
    upper: np.ndarray              # (n,) position upper limits (rad), before the margin
    velocity: np.ndarray           # (n,) velocity limits (rad/s), > 0
    acceleration: np.ndarray       # (n,) acceleration limits (rad/s^2), > 0; also the braking rate
    workspace_min: np.ndarray      # (3,) tool box lower corner, base frame (m)
    workspace_max: np.ndarray      # (3,) tool box upper corner, base frame (m)
    table_height: float            # z of the table plane (m)
    table_clearance: float = 0.0   # the tool stays at z >= table_height + table_clearance (m), >= 0
    margin: float = 0.1            # commanded positions stay within [lower + margin, upper - margin] (rad), >= 0
    stale_timeout: float = 0.1     # observation / proposal older than this (s) -> brake to a hold, > 0
    dt: float = 0.002              # nominal tick period (s), > 0; used to difference the proposal
    max_dt: float = 0.01           # longest tick interval integrated (s), >= dt: a late tick moves no further
    max_step: np.ndarray | None = None  # (n,) or scalar: largest change of a commanded position in one tick (rad);
    #                                     None -> velocity * max_dt. Enforced as the speed cap max_step / max_dt.
    rest_velocity: float = 0.01    # measured |qd| below this (rad/s) counts as at rest for request_reset, > 0
    # Plausibility of the measured state (docs/safety.md, "Measured state"):
    state_tolerance: float = 0.05  # measured q may lie this far outside the URDF limits (rad), else rejected, >= 0
    jump_tolerance: float = 0.02   # measured q may move velocity * elapsed + this between samples (rad), else
    #                                rejected as a jump faster than the joint can move, >= 0
    resync_tolerance: np.ndarray | None = None  # (n,) or scalar: request_reset re-synchronises the command to the
    #                                measured q only within this of the last command (rad); None -> max_step
    track_measured: bool = False   # velocity interface: start every tick from the measured position
    tracking_error_limit: float = math.inf  # measured vs the command (with track_measured: vs where the velocity
    #                                commands should have taken the arm) (rad); above it -> brake to rest, latched
    #                                until request_reset(); inf: off
    link_box_min: np.ndarray | None = None  # (3,) box every moving link's collision geometry stays in (m), with
    link_box_max: np.ndarray | None = None  # the table plane folded into z; None -> unbounded (table only)

    def __post_init__(self):
        names = tuple(str(n) for n in self.joint_names)
        n = len(names)
        if n == 0 or len(set(names)) != n:
            raise ValueError(f'SafetyConfig.joint_names must be non-empty and unique, got {names}')
        object.__setattr__(self, 'joint_names', names)
        if self.max_step is None:
            object.__setattr__(self, 'max_step', np.asarray(self.velocity, dtype=np.float64) * float(self.max_dt))
        if self.resync_tolerance is None:
            object.__setattr__(self, 'resync_tolerance', self.max_step)
        for field in _PER_JOINT:
            raw = np.asarray(getattr(self, field), dtype=np.float64)
            if raw.shape not in ((), (n,)):
                raise ValueError(f'SafetyConfig.{field} has shape {raw.shape}: must be ({n},), one per joint {names}')
            value = np.array(np.broadcast_to(raw, (n,)))
            value.flags.writeable = False
            object.__setattr__(self, field, value)
        for field in ('workspace_min', 'workspace_max'):
            value = np.array(getattr(self, field), dtype=np.float64)
            if value.shape != (3,) or not np.isfinite(value).all():
                raise ValueError(f'SafetyConfig.{field} must be 3 finite numbers (m), got {value}')
            value.flags.writeable = False
            object.__setattr__(self, field, value)
        for field, default in (('link_box_min', -math.inf), ('link_box_max', math.inf)):
            raw = getattr(self, field)
            value = np.full(3, default) if raw is None else np.array(raw, dtype=np.float64)
            if value.shape != (3,) or np.isnan(value).any():
                raise ValueError(f'SafetyConfig.{field} must be 3 numbers (m, +-inf for none), got {value}')
            value.flags.writeable = False
            object.__setattr__(self, field, value)
        for field in ('table_height', 'table_clearance', 'margin', 'stale_timeout', 'dt', 'max_dt', 'rest_velocity',
                      'state_tolerance', 'jump_tolerance', 'tracking_error_limit'):
            object.__setattr__(self, field, float(getattr(self, field)))
        object.__setattr__(self, 'track_measured', bool(self.track_measured))
        self._validate()

    def _validate(self):
        def fail(field, value, allowed):
            raise ValueError(f'SafetyConfig.{field} = {value}: must be {allowed}')

        for field in ('lower', 'upper'):
            for name, v in zip(self.joint_names, getattr(self, field)):
                if not math.isfinite(v):
                    fail(f'{field}[{name}]', v, 'finite (rad)')
        for field in ('velocity', 'acceleration', 'max_step'):
            for name, v in zip(self.joint_names, getattr(self, field)):
                if not (math.isfinite(v) and v > 0):
                    fail(f'{field}[{name}]', v, 'finite and > 0')
        for name, v in zip(self.joint_names, self.resync_tolerance):
            if not (math.isfinite(v) and v >= 0):
                fail(f'resync_tolerance[{name}]', v, 'finite and >= 0')
        if not (self.tracking_error_limit > 0):
            fail('tracking_error_limit', self.tracking_error_limit, '> 0 (inf: off)')
        for field, lo in (('margin', 0.0), ('table_clearance', 0.0), ('state_tolerance', 0.0),
                          ('jump_tolerance', 0.0)):
            v = getattr(self, field)
            if not (math.isfinite(v) and v >= lo):
                fail(field, v, f'finite and >= {lo}')
        for field in ('stale_timeout', 'dt', 'rest_velocity'):
            v = getattr(self, field)
            if not (math.isfinite(v) and v > 0):
                fail(field, v, 'finite and > 0')
        if not (math.isfinite(self.max_dt) and self.max_dt >= self.dt):
            fail('max_dt', self.max_dt, f'finite and >= dt = {self.dt}')
        if not math.isfinite(self.table_height):
            fail('table_height', self.table_height, 'finite (m)')
        lo, hi = self.position_bounds
        for name, a, b in zip(self.joint_names, lo, hi):
            if not a < b:
                fail('margin', self.margin, f'smaller than half the range of joint {name} (limits {a:.4f}..{b:.4f} '
                                            'after the margin are empty)')
        box_min, box_max = self.tool_bounds
        for axis, a, b in zip('xyz', box_min, box_max):
            if not a < b:
                fail(f'workspace_max[{axis}]', b, f'> {a} (workspace_min, or table_height + table_clearance for z)')
        box_min, box_max = self.link_bounds
        for axis, a, b in zip('xyz', box_min, box_max):
            if not a < b:
                fail(f'link_box_max[{axis}]', b, f'> {a} (link_box_min, or table_height + table_clearance for z)')

    @property
    def position_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Commanded position range per joint: (lower + margin, upper - margin)."""
        return self.lower + self.margin, self.upper - self.margin

    @property
    def tool_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Tool box with the table plane folded in: z_min = max(workspace_min z, table_height + clearance)."""
        box_min = self.workspace_min.copy()
        box_min[2] = max(box_min[2], self.table_height + self.table_clearance)
        return box_min, self.workspace_max.copy()

    @property
    def link_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Box for every moving link's collision geometry, the table plane folded into z like the tool's."""
        box_min = self.link_box_min.copy()
        box_min[2] = max(box_min[2], self.table_height + self.table_clearance)
        return box_min, self.link_box_max.copy()

    @property
    def state_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Range a measured position may take: the URDF limits widened by state_tolerance."""
        return self.lower - self.state_tolerance, self.upper + self.state_tolerance

    @property
    def speed_limit(self) -> np.ndarray:
        """Per-joint speed cap: the velocity limit, tightened by the per-tick step bound over the longest tick."""
        return np.minimum(self.velocity, self.max_step / self.max_dt)

    @classmethod
    def from_profile(cls, profile, **overrides) -> 'SafetyConfig':
        """Config from a RobotProfile (limits, margin, workspace, table); keyword overrides replace fields."""
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f'SafetyConfig has no field(s) {sorted(unknown)}')
        fields = dict(joint_names=profile.joint_names, lower=profile.lower, upper=profile.upper,
                      velocity=profile.velocity, acceleration=profile.acceleration, margin=profile.margin,
                      workspace_min=profile.workspace_min, workspace_max=profile.workspace_max,
                      table_height=profile.table_height, table_clearance=profile.table_clearance)
        fields.update(overrides)
        return cls(**fields)
