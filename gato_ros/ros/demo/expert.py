"""The scripted expert behind policy_node's policy interface, for when no trained checkpoint exists."""

from __future__ import annotations

import time

import numpy as np

from gato_ros.core.policy import PolicyResult, PolicyStatus
from gato_ros.core.sim import ScriptedExpert, SimObservation


class ExpertPolicy:
    """act(observation) -> PolicyResult: the scripted expert on sim_node's privileged state (block poses). Its
    action still travels policy_node -> proposal -> safety -> sim."""

    def __init__(self, sim_node):
        self.sim_node = sim_node
        self.expert = ScriptedExpert(task=tuple(sim_node.config.task), block_size=sim_node.sim.config.block_size)
        self.random_weights = False

    def reset(self, prompt=None) -> None:
        self.expert.reset()

    def act(self, observation) -> PolicyResult:
        start = time.perf_counter()
        action = self.expert.act(SimObservation(self.sim_node.privileged_state(), None))
        return PolicyResult(np.asarray(action, dtype=np.float64), time.perf_counter() - start, PolicyStatus.OK)
