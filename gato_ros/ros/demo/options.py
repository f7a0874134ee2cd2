"""What `gato-ros demo` runs (DemoOptions) and what one episode measured (EpisodeReport)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class DemoOptions:
    robot: str = 'ur5e'                 # 'ur5e' | 'sawyer'
    episodes: int = 3                   # >= 1
    checkpoint: Path | None = None      # None: the committed checkpoint if there is one, else the scripted expert
    expert: bool = False                # the scripted expert drives instead of any checkpoint (explicit fallback)
    seed: int = 1_000_000               # seed of the first episode (held out from training); episode i uses seed + i
    out: Path = Path('runs/demo')       # demo.mp4 and demo_success.png go here
    max_time: float = 30.0              # episode limit (sim seconds), > 0
    video_fps: float = 10.0             # frames per sim second in the video, 1..30
    upscale: int = 4                    # nearest-neighbour magnification of the 64 px camera images, 1..16
    realtime: bool = False              # SCHED_FIFO and CPU placement per process (ros/bringup.placements)

    def __post_init__(self):
        checks = {'expert': (not (self.expert and self.checkpoint), 'False when a checkpoint is given'),
                  'robot': (self.robot in ('ur5e', 'sawyer'), "'ur5e' or 'sawyer'"),
                  'episodes': (self.episodes >= 1, '>= 1'), 'seed': (0 <= self.seed < 2**31 - 1000, '0..2^31-1000'),
                  'max_time': (self.max_time > 0, '> 0 s'), 'video_fps': (1 <= self.video_fps <= 30, '1..30'),
                  'upscale': (1 <= self.upscale <= 16, '1..16')}
        for name, (ok, allowed) in checks.items():
            if not ok:
                raise ValueError(f'DemoOptions.{name}={getattr(self, name)!r} is invalid; allowed: {allowed}')


@dataclass
class EpisodeReport:
    seed: int
    success: bool
    reason: str                     # task status reason at the end ('' when stacked)
    sim_time: float                 # s, sim time at the end of the episode
    wall_time: float                # s
    commands: int                   # commands the sim received on the command topic
    commands_outside_limits: int    # of those, outside the profile's joint position limits
    start_offset: float             # rad, max |first received command - reset pose|: ~0 = started from the reset
    #                                 pose (the depth-1 command publisher may drop the very first few)
    proposal_times: list = field(default_factory=list)   # monotonic receive times of non-empty proposals
    holds: int = 0                  # empty "hold" proposals (policy skipped a step)
    latencies: list = field(default_factory=list)        # policy step latencies (s)
    deadline: float | None = None   # s, the policy's step deadline
    safety_rate: float | None = None  # Hz, the safety controller's configured rate
    command_times: list = field(default_factory=list)    # safety publications, monotonic (s)
    command_stamps: list = field(default_factory=list)   # the same, the filter's (sim) time of each command (s)
