"""The scripted expert's action at every recorded state of an episode.

The expert's phase is a function of the state (core/sim/expert.py), so it can label any recorded state after the
fact: an episode's robot state comes from its joint positions (tool pose by forward kinematics, gripper closure
from the fingers, as the Observer computes them) and the recorded block poses. Relabelling makes every
episode -- demonstrations and DAgger rollouts recorded by any earlier expert -- agree with one expert.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import numpy as np

from ..observation import Observer
from ..robots import load_profile
from ..sim.scene import SimConfig
from ..sim.expert import Phase, ScriptedExpert
from ..sim.runner import SimObservation
from ..sim.stacking import BlockPose, SimState
from .mcap_io import BLOCK_ORDER, Episode


def recorded_states(episode: Episode) -> Iterator[SimState]:
    """The SimState of every recorded timestep (needs the block poses: episodes recorded with /gato/sim/blocks)."""
    if episode.blocks is None:
        raise ValueError(f'episode {episode.info.robot} seed {episode.info.seed}: no block poses recorded '
                         '(/gato/sim/blocks), cannot replay the expert on it')
    gripper, tool_pos, tool_yaw = Observer(load_profile(episode.info.robot)).proprio(episode.q, episode.finger_q)
    for t in range(len(episode)):
        blocks = {color: BlockPose(episode.blocks[t, i, :3], episode.blocks[t, i, 3:])
                  for i, color in enumerate(BLOCK_ORDER)}
        yield SimState(time=float(episode.time[t] - episode.time[0]), q=episode.q[t], qd=episode.qd[t],
                       gripper=float(gripper[t]), finger_q=episode.finger_q[t], tool_pos=tool_pos[t],
                       tool_yaw=float(tool_yaw[t]), blocks=blocks)


def expert_labels(episode: Episode, block_size: float = SimConfig().block_size) -> tuple[np.ndarray, list[Phase]]:
    """(T, ACTION_DIM) expert actions and the expert's phase at each recorded state."""
    expert = ScriptedExpert(task=episode.info.task, block_size=block_size)
    actions, phases = [], []
    for state in recorded_states(episode):
        actions.append(expert.act(SimObservation(state, None)))
        phases.append(expert.phase)
    return np.asarray(actions, dtype=episode.actions.dtype), phases


def relabelled(episode: Episode) -> Episode:
    """The episode with every action replaced by the expert's action at that state."""
    return dataclasses.replace(episode, actions=expert_labels(episode)[0])
