"""The one latency and rate summary of the project, one spelling of its keys everywhere (engine, evaluation,
bringup, demo): milliseconds as `<stat>_ms`, rates as `rate_hz`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LatencySummary:
    """Durations (or intervals) summarised in milliseconds; None when there are no samples."""
    count: int
    mean_ms: float | None
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @classmethod
    def from_seconds(cls, samples) -> 'LatencySummary':
        ms = np.asarray(samples, dtype=np.float64).ravel() * 1e3
        if not ms.size:
            return cls(0, None, None, None, None)
        return cls(int(ms.size), float(ms.mean()), *(float(np.percentile(ms, q)) for q in (50, 99)), float(ms.max()))

    def to_dict(self, digits: int = 3) -> dict:
        return {k: v if v is None or isinstance(v, int) else round(v, digits) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class RateSummary:
    """A measured rate from event times (s): 1 / mean interval, the interval jitter (std) and the intervals."""
    rate_hz: float           # 0.0 with fewer than two events
    jitter_std_ms: float | None
    interval: LatencySummary

    @classmethod
    def from_times(cls, times) -> 'RateSummary':
        return cls.from_intervals(np.diff(np.asarray(times, dtype=np.float64).ravel()))

    @classmethod
    def from_intervals(cls, intervals) -> 'RateSummary':
        """Intervals (s) between events, e.g. those of several runs put together without the gaps between them."""
        intervals = np.asarray(intervals, dtype=np.float64).ravel()
        if not intervals.size:
            return cls(0.0, None, LatencySummary.from_seconds(intervals))
        return cls(float(1.0 / intervals.mean()), float(intervals.std() * 1e3), LatencySummary.from_seconds(intervals))

    def to_dict(self, digits: int = 3) -> dict:
        jitter = None if self.jitter_std_ms is None else round(self.jitter_std_ms, digits)
        return {'rate_hz': round(self.rate_hz, digits), 'jitter_std_ms': jitter,
                'interval': self.interval.to_dict(digits)}
