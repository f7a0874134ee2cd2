"""What the demo prints: one line per episode and the summary dict (LatencySummary / RateSummary / TickSummary
spelling)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gato_ros.core.stats import LatencySummary, RateSummary, TickSummary
from gato_ros.ros.demo.options import DemoOptions, EpisodeReport

DRIVERS = {'checkpoint': 'the trained Gato policy', 'expert': 'the scripted expert'}


def episode_line(options: DemoOptions, index: int, ep: EpisodeReport) -> str:
    rate = RateSummary.from_times(ep.proposal_times).rate_hz
    return (f'episode {index + 1}/{options.episodes} seed {ep.seed}: '
            f"{'SUCCESS' if ep.success else 'failed (' + (ep.reason or 'time limit') + ')'} after "
            f'{ep.sim_time:.1f} s sim / {ep.wall_time:.1f} s wall; policy {rate:.1f} Hz '
            f'({ep.holds} holds), {ep.commands} commands ({ep.commands_outside_limits} outside limits), '
            f'first received command {ep.start_offset:.4f} rad from the reset pose')


def deadline_summary(latencies, deadline: float | None) -> dict:
    """Policy steps inside their deadline: the steps that ran the policy (skipped ones are counted as holds)."""
    latencies = np.asarray(latencies, dtype=np.float64)
    missed = int((latencies > deadline).sum()) if deadline is not None else 0
    return {'deadline_ms': None if deadline is None else round(deadline * 1e3, 3), 'steps': int(latencies.size),
            'missed': missed, 'inside_fraction': round(1.0 - missed / latencies.size, 4) if latencies.size else None}


def summary(options: DemoOptions, mode: str, episodes: list[EpisodeReport], seconds: float, video: Path,
            success_png) -> dict:
    """policy_hz is the measured proposal rate on the topic (eval's policy_compute_hz is 1 / step latency);
    safety_sim_time counts the safety controller's commands against its configured rate in sim time, the time
    the simulated arm lives in."""
    proposal_intervals = np.concatenate([np.diff(e.proposal_times) for e in episodes])
    sim_time, wall_time = sum(e.sim_time for e in episodes), sum(e.wall_time for e in episodes)
    latencies = np.concatenate([e.latencies for e in episodes])
    return {
        'robot': options.robot, 'mode': mode, 'driver': DRIVERS[mode], 'episodes': len(episodes),
        'realtime': options.realtime,
        'success_rate': round(sum(e.success for e in episodes) / len(episodes), 3),
        'policy_hz': round(RateSummary.from_intervals(proposal_intervals).rate_hz, 2),
        'policy_latency': LatencySummary.from_seconds(latencies).to_dict(),
        'policy_deadline': deadline_summary(latencies, episodes[0].deadline),
        'policy_holds': sum(e.holds for e in episodes),
        'commands': RateSummary.from_intervals(np.concatenate([np.diff(e.command_times) for e in episodes]))
        .to_dict(),
        'safety_sim_time': TickSummary.from_runs([e.command_stamps for e in episodes], episodes[0].safety_rate or 0.0)
        .to_dict(),
        'commands_outside_limits': sum(e.commands_outside_limits for e in episodes),
        'start_offset_rad_max': round(max(e.start_offset for e in episodes), 4),
        'realtime_factor': round(sim_time / wall_time, 3) if wall_time else 0.0,
        'seconds': round(seconds, 1), 'video': str(video),
        'success_png': str(success_png) if success_png else None,
        'per_episode': [{'seed': e.seed, 'success': e.success, 'sim_time': round(e.sim_time, 2),
                         'wall_time': round(e.wall_time, 2), 'commands': e.commands} for e in episodes],
    }
