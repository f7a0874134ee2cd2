"""The policy's proposal: stamped joint-position targets over absolute times."""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Proposal:
    """Joint-space targets from the policy (times absolute, seconds, like the tick's `now`).

    The constructor checks shapes only; finite values and increasing times are the filter's to judge, so a bad
    proposal becomes a status code instead of an exception in the control loop. Arrays are copied read-only.
    """

    stamp: float            # when the proposal was made (s); its age is now - stamp
    times: np.ndarray       # (k,) k >= 1, should increase strictly
    positions: np.ndarray   # (k, n) joint positions (rad), controller joint order

    def __post_init__(self):
        times = np.array(self.times, dtype=np.float64)
        positions = np.array(self.positions, dtype=np.float64)
        if times.ndim != 1 or times.size == 0:
            raise ValueError(f'Proposal.times must have shape (k,) with k >= 1, got {times.shape}')
        if positions.ndim != 2 or positions.shape[0] != times.size:
            raise ValueError(f'Proposal.positions must have shape ({times.size}, n) to match times, '
                             f'got {positions.shape}')
        times.flags.writeable = False
        positions.flags.writeable = False
        object.__setattr__(self, 'stamp', float(self.stamp))
        object.__setattr__(self, 'times', times)
        object.__setattr__(self, 'positions', positions)

    def sample(self, t: float) -> np.ndarray:
        """Target at time t: linear interpolation, the first point before times[0], the last after times[-1].

        Never extrapolates: outside [times[0], times[-1]] the nearest end point is held.
        """
        times, positions = self.times, self.positions
        if t <= times[0]:
            return positions[0].copy()
        if t >= times[-1]:
            return positions[-1].copy()
        i = int(np.searchsorted(times, t, side='right'))
        w = (t - times[i - 1]) / (times[i] - times[i - 1])
        return positions[i - 1] + w * (positions[i] - positions[i - 1])
