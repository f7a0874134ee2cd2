"""Demonstration prompts: a successful scripted episode of a task, recorded and read back through the same MCAP
path as training, whose end conditions a policy (`gato-ros eval --prompt-task`, the demo's prompt_task)."""

from __future__ import annotations

import tempfile
from pathlib import Path

PROMPT_SEED = 2_000_000   # demonstrations for prompts: away from recording (0..) and evaluation (1e6..) seeds
PROMPT_ATTEMPTS = 10


class PromptError(ValueError):
    """No prompt can be made: the checkpoint takes none, or the expert never succeeded; the message says which."""


def demonstration(robot: str, task, sim_config, runner_config):
    """A successful scripted episode of `task` (the first of PROMPT_ATTEMPTS seeds from PROMPT_SEED)."""
    from gato_ros.core.data import read_episode
    from gato_ros.core.data.record import Recorder, episode_filename

    recorder = Recorder(sim_config, runner_config)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for seed in range(PROMPT_SEED, PROMPT_SEED + PROMPT_ATTEMPTS):
                path = Path(tmp) / episode_filename(robot, task, seed)
                info, _ = recorder.record(seed, path)
                if info.success:
                    return read_episode(path)
    finally:
        recorder.close()
    raise PromptError(f'the scripted expert failed {task[0]} on {task[1]} for seeds {PROMPT_SEED}..'
                      f'{PROMPT_SEED + PROMPT_ATTEMPTS - 1}: no demonstration for the prompt')


def demonstration_prompt_for(policy, robot: str, task, sim_config):
    """The prompt for `task`: the end of a successful scripted demonstration, recorded at the checkpoint's
    control rate, taking the share of the policy's window that training gave prompts."""
    from gato_ros.core.data.dataset import demonstration_prompt
    from gato_ros.core.sim.runner import RunnerConfig

    if policy.spec.prompt_fraction == 0:
        raise PromptError('this checkpoint was trained without demonstration prompts; --prompt-task needs one that was')
    runner_config = RunnerConfig(control_hz=policy.spec.control_hz, render=True)  # full length
    return demonstration_prompt(demonstration(robot, tuple(task), sim_config, runner_config),
                                int(policy.engine.max_context * policy.spec.prompt_fraction))
