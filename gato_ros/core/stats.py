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


@dataclass(frozen=True)
class TickSummary:
    """The commands of a fixed-rate loop from their stamps (s, on one clock: wall, or sim time in the demo): the
    rate against the configured one and the longest gap between two commands, in ms and in ticks."""
    count: int
    configured_hz: float
    rate_hz: float               # gaps / their total span; 0.0 with fewer than two stamps in every run
    rate_fraction: float         # rate_hz / configured_hz
    longest_gap_ms: float | None
    longest_gap_ticks: float | None
    gaps_over_limit: int | None  # gaps longer than limit_ms (None without a limit)
    limit_ms: float | None

    @classmethod
    def from_runs(cls, runs, configured_hz: float, limit_s: float | None = None) -> 'TickSummary':
        """`runs`: the stamps of each run (e.g. one per demo episode); the gaps between runs are not counted."""
        runs = [np.asarray(run, dtype=np.float64).ravel() for run in runs]
        count = int(sum(run.size for run in runs))
        gaps = np.concatenate([np.diff(run) for run in runs if run.size > 1] or [np.zeros(0)])
        span = float(gaps.sum())
        limit_ms = None if limit_s is None else limit_s * 1e3
        if span <= 0.0:
            return cls(count, configured_hz, 0.0, 0.0, None, None, None if limit_s is None else 0, limit_ms)
        rate, longest = gaps.size / span, float(gaps.max())
        return cls(count, configured_hz, rate, rate / configured_hz if configured_hz else 0.0, longest * 1e3,
                   longest * configured_hz, None if limit_s is None else int((gaps > limit_s).sum()), limit_ms)

    def to_dict(self, digits: int = 3) -> dict:
        return {k: v if v is None or isinstance(v, int) else round(v, digits) for k, v in asdict(self).items()}

