"""GatoPolicy: checkpoint + engine + observation/action glue, what policy_node and the evaluator run.

A checkpoint's PolicySpec (core/policy_spec.py) names the robot(s) it was trained for; the policy refuses to
start on a robot whose joint names differ (a joint-order mismatch would silently send the wrong joint's angle
to the model). The spec also sets the engine's window (the trained context) and its action decoding. The grip
goes through a GripLatch (robots/action.py), so an unsure grip does not open and close the fingers every step.
"""

from __future__ import annotations

import enum
import pathlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch

from gato_ros.core.checkpoint import CheckpointError, check_state_dict, load_checkpoint
from gato_ros.core.engine import EngineConfig, EngineResult, GatoEngine
from gato_ros.core.model import Gato, GatoConfig, preset
from gato_ros.core.policy_spec import PolicySpec
from gato_ros.core.robots import ACTION_DIM, GRIP_HYSTERESIS, GripLatch, RobotProfile
from gato_ros.core.tokenizer import check_tokenizer_config, tokenize_observation, tokenizer_config


class PolicyError(ValueError):
    """The policy cannot run with this checkpoint on this robot; the message names both sides."""


class PolicyStatus(enum.Enum):
    OK = 'ok'
    LATE = 'late'                                # an action, but computed after deadline_s
    INVALID_OBSERVATION = 'invalid_observation'  # no action: the observation could not be tokenized


@dataclass(frozen=True)
class PolicyResult:
    action: np.ndarray | None   # (ACTION_DIM,) in [-1, 1]: [vx, vy, vz, yaw_rate, grip]; None unless usable
    latency_s: float            # tokenization + engine step (wall time, stats only)
    status: PolicyStatus
    reason: str = ''


def check_robot(spec: PolicySpec, profile: RobotProfile, source: str) -> None:
    joints = tuple(profile.joint_names)
    if spec.robots.get(profile.name, spec.robots.get('')) == joints:   # '' = a robot of any name
        return
    described = '; '.join(f"{name or 'robot'}: {list(j)}" for name, j in spec.robots.items())
    raise PolicyError(f"{source} was trained for {described} -- robot profile '{profile.name}' has joints "
                      f'{list(joints)}; refusing to start (joint names/order must match exactly)')


class GatoPolicy:
    def __init__(self, model: Gato, engine: GatoEngine, config: Mapping, spec: PolicySpec,
                 random_weights: bool = False, deadline_s: float | None = None,
                 grip_hysteresis: float = GRIP_HYSTERESIS):
        self.model, self.engine, self.config, self.spec = model, engine, config, spec
        self.grip = GripLatch(grip_hysteresis)
        self.random_weights = random_weights    # True: bring-up/tests only, the actions mean nothing
        if deadline_s is not None and not deadline_s > 0:
            raise ValueError(f'GatoPolicy deadline_s must be > 0 seconds or None, got {deadline_s}')
        self.deadline_s = deadline_s

    @classmethod
    def from_checkpoint(cls, path, profile: RobotProfile, device: str = 'cpu', compile: bool = False,
                        deadline_s: float | None = None, grip_hysteresis: float = GRIP_HYSTERESIS,
                        **engine_options) -> 'GatoPolicy':
        """Load a checkpoint directory; PolicyError if it was trained for other joints, CheckpointError if
        it is unusable. grip_hysteresis: the GripLatch band (0 = the model's grip as decoded). engine_options:
        other EngineConfig fields (dtype, temperature, seed, max_context, eviction)."""
        path = pathlib.Path(path)
        state_dict, config = load_checkpoint(path)
        try:
            spec = PolicySpec.from_checkpoint_config(config)
            check_tokenizer_config(config['tokenizer'])
            model_config = GatoConfig.from_dict(config['model'])
        except (TypeError, ValueError) as exc:
            raise CheckpointError(f"{path / 'config.json'}: {exc}") from None
        check_robot(spec, profile, f'checkpoint {path}')
        with torch.device('meta'):
            model = Gato(model_config)
        check_state_dict(state_dict, model.state_dict(), str(path / 'model.safetensors'))
        model.load_state_dict(state_dict, strict=True, assign=True)
        # Run on the window length the model was trained on: a longer one puts it out of distribution.
        engine_options.setdefault('max_context', spec.context)
        engine_options.setdefault('decoding', spec.decoding)
        return cls._build(model, config, spec, deadline_s, False, grip_hysteresis, device=device, compile=compile,
                          **engine_options)

    @classmethod
    def random(cls, preset_name: str, profile: RobotProfile, device: str = 'cpu', compile: bool = False,
               seed: int = 0, deadline_s: float | None = None, grip_hysteresis: float = GRIP_HYSTERESIS,
               **engine_options) -> 'GatoPolicy':
        """RANDOM WEIGHTS, for bring-up, timing and tests: the actions are meaningless."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = Gato(preset(preset_name))
        config = {'model': model.config.to_dict(), 'tokenizer': tokenizer_config(), 'stats': {}, 'random_weights': True,
                  'robot': {'name': profile.name, 'joint_names': list(profile.joint_names)}}
        spec = PolicySpec(context=model.config.context, robots={profile.name: profile.joint_names})
        return cls._build(model, config, spec, deadline_s, True, grip_hysteresis, device=device, compile=compile,
                          seed=seed, **engine_options)

    @classmethod
    def _build(cls, model, config, spec, deadline_s, random_weights, grip_hysteresis, **engine_options):
        engine = GatoEngine(model, EngineConfig(action_dim=ACTION_DIM, **engine_options))
        return cls(model, engine, config, spec, random_weights, deadline_s, grip_hysteresis)

    def reset(self, prompt=None) -> None:
        """New episode; `prompt` (TokenSequence of whole timesteps, e.g. a successful demonstration) stays in
        the context for the whole episode."""
        self.engine.reset(prompt)
        self.grip.reset()

    def act(self, observation: Mapping) -> PolicyResult:
        """Observation dict (observation.build_observation) -> the next action."""
        start = time.perf_counter()
        try:
            tokens = tokenize_observation(observation)
        except (TypeError, ValueError) as exc:
            return PolicyResult(None, time.perf_counter() - start, PolicyStatus.INVALID_OBSERVATION, str(exc))
        result: EngineResult = self.engine.step(tokens)
        latency = time.perf_counter() - start
        action = np.clip(result.action, -1.0, 1.0)
        action[4] = self.grip(float(action[4]))
        if self.deadline_s is not None and latency > self.deadline_s:
            return PolicyResult(action, latency, PolicyStatus.LATE,
                                f'step took {latency * 1e3:.1f} ms > deadline {self.deadline_s * 1e3:.1f} ms')
        return PolicyResult(action, latency, PolicyStatus.OK)
