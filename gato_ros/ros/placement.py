"""Where a node process runs: its CPUs and its scheduler (SCHED_FIFO for the real-time option), and that it never
outlives its parent. No rclpy here: the placement is applied before rclpy starts, so rclpy's and DDS's threads
inherit it, and `gato-ros bench safety` uses it without ROS.
"""

from __future__ import annotations

import ctypes
import os
import signal
from dataclasses import dataclass

# SCHED_FIFO priorities of the real-time option: the safety controller above the policy above the sim. The sim
# stands in for the arm, which runs on hardware of its own on a robot, so it takes what is left; falling behind
# only slows sim time (everything that is measured in it stays consistent), while a late policy step is dropped.
# Anything else on the machine (a training job) runs only when none of them wants the CPU.
PRIORITIES = {'safety': 80, 'policy': 70, 'sim': 60}
REALTIME_HELP = ('SCHED_FIFO per process (safety {safety}, policy {policy}, sim {sim}), the safety controller and '
                 'the policy on CPUs apart; needs root, CAP_SYS_NICE or an rtprio limit').format(**PRIORITIES)


class PlacementError(RuntimeError):
    """The requested CPUs or real-time priority cannot be had; the message says why and what to change."""


@dataclass(frozen=True)
class Placement:
    """Where a node process runs: `cpus` (() = wherever the OS likes) and a SCHED_FIFO priority (0 = off)."""
    cpus: tuple[int, ...] = ()
    realtime_priority: int = 0


def place(placement: Placement, what: str) -> None:
    """Apply `placement` to the calling thread; threads started afterwards (rclpy's, DDS's) inherit it."""
    if placement.cpus:
        try:
            os.sched_setaffinity(0, placement.cpus)
        except OSError as exc:
            raise PlacementError(f'{what}: cannot pin to CPUs {list(placement.cpus)} ({exc.strerror}); this machine '
                                 f'has CPUs {sorted(os.sched_getaffinity(0))}') from None
    priority = placement.realtime_priority
    if priority:
        low, high = (os.sched_get_priority_min(os.SCHED_FIFO), os.sched_get_priority_max(os.SCHED_FIFO))
        if not low <= priority <= high:
            raise PlacementError(f'{what}: real-time priority {priority} is outside SCHED_FIFO\'s {low}..{high}')
        try:
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        except PermissionError:
            raise PlacementError(
                f'{what}: SCHED_FIFO priority {priority} is not permitted for this user: run as root, give the '
                'user an rtprio limit (/etc/security/limits.conf, `ulimit -r`) or CAP_SYS_NICE, or run without '
                'the real-time option') from None


def exit_with_parent() -> None:
    """Ask Linux to SIGTERM this process when its parent dies, so a node process never outlives its launcher: the
    safety controller then brakes and exits instead of commanding on alone."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def placements(realtime: bool) -> dict[str, Placement]:
    """Where each process runs. Without the real-time option: anywhere, default scheduler. With it: SCHED_FIFO
    (PRIORITIES); on two or more CPUs the safety controller on the last and the policy on the others, so neither
    ever waits for the other; the sim takes any CPU they leave."""
    if not realtime:
        return {role: Placement() for role in PRIORITIES}
    cpus = sorted(os.sched_getaffinity(0))
    first, last = (tuple(cpus[:-1]), (cpus[-1],)) if len(cpus) > 1 else ((), ())
    where = {'safety': last, 'policy': first, 'sim': ()}
    return {role: Placement(where[role], priority) for role, priority in PRIORITIES.items()}
