"""PolicySpec: the typed contract between a checkpoint and everything that runs it.

Training writes it into config.json ('policy' section); GatoPolicy, evaluation, the demo and policy_node read only
it. A checkpoint trained on other cameras, another image size or another control rate would otherwise run
silently out of distribution, so every consumer checks its own settings against the spec and refuses to start
on a contradiction, naming both values.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from .fields import from_known_fields

from .robots import ACTION_DIM
from .tokenizer import PATCH_SIZE

ACTION_LAYOUT = ('vx', 'vy', 'vz', 'yaw_rate', 'grip')
DECODINGS = ('argmax', 'mean')


class PolicySpecError(ValueError):
    """A spec that is malformed, or settings that contradict it; the message names the field and both values."""


@dataclass(frozen=True)
class PolicySpec:
    """What a policy was trained on, field by field. Validated on construction."""

    cameras: tuple[str, ...] = ('front_left', 'front_right')  # image fields, in observation order; non-empty
    image_size: int = 64                    # square camera images (px), a positive multiple of the patch size (16)
    control_hz: float = 10.0                # action rate the demonstrations were recorded at (Hz), > 0
    action_layout: tuple[str, ...] = ACTION_LAYOUT  # the action vector, each in [-1, 1]
    context: int = 1024                     # tokens in the engine's window (what training cropped to), >= 2
    prompt_fraction: float = 0.0            # share of the window a demonstration prompt takes, in [0, 1)
    decoding: str = 'argmax'                # action bins -> value: 'argmax' or 'mean' (expected value)
    robots: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # robot name -> arm joints (order)
    prompt_task: tuple[str, ...] = ()       # (top, bottom): the demo conditions on a demonstration of it; () none

    def __post_init__(self):
        object.__setattr__(self, 'cameras', tuple(self.cameras))
        object.__setattr__(self, 'action_layout', tuple(self.action_layout))
        object.__setattr__(self, 'prompt_task', tuple(self.prompt_task))
        object.__setattr__(self, 'robots', {str(k): tuple(v) for k, v in dict(self.robots).items()})

        def check(name, ok, allowed):
            if not ok:
                raise PolicySpecError(f'PolicySpec.{name}={getattr(self, name)!r} is invalid; allowed: {allowed}')
        check('cameras', len(self.cameras) > 0 and all(isinstance(c, str) and c for c in self.cameras)
              and len(set(self.cameras)) == len(self.cameras), 'distinct non-empty camera names')
        check('image_size', isinstance(self.image_size, int) and self.image_size > 0
              and self.image_size % PATCH_SIZE == 0, f'a positive multiple of {PATCH_SIZE}')
        check('control_hz', self.control_hz > 0, '> 0 Hz')
        check('action_layout', len(self.action_layout) == ACTION_DIM, f'{ACTION_DIM} names, e.g. {ACTION_LAYOUT}')
        check('context', isinstance(self.context, int) and self.context >= 2, 'an int >= 2')
        check('prompt_fraction', 0.0 <= self.prompt_fraction < 1.0, '[0, 1)')
        check('decoding', self.decoding in DECODINGS, ' or '.join(DECODINGS))
        check('robots', all(joints and all(isinstance(j, str) for j in joints) for joints in self.robots.values()),
              'robot name -> non-empty list of joint names')
        check('prompt_task', len(self.prompt_task) in (0, 2), '() or (top, bottom)')

    def to_dict(self) -> dict:
        d = asdict(self)
        d['robots'] = {name: list(joints) for name, joints in self.robots.items()}
        d['cameras'], d['action_layout'] = list(self.cameras), list(self.action_layout)
        d['prompt_task'] = list(self.prompt_task)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> 'PolicySpec':
        return from_known_fields(cls, d, PolicySpecError)

    @classmethod
    def from_checkpoint_config(cls, config: Mapping) -> 'PolicySpec':
        """The 'policy' section; checkpoints written before it existed are read from their data/robot sections.
        `gato-ros export --prompt-task` writes its task into a 'demo' section, which overrides prompt_task."""
        prompt_task = tuple(config.get('demo', {}).get('prompt_task', ()))
        if 'policy' in config:
            spec = cls.from_dict(config['policy'])
            return dataclasses.replace(spec, prompt_task=prompt_task) if prompt_task else spec
        data, robot = config.get('data', {}), config.get('robot', {})
        robots = ({name: joints for name, joints in robot['profiles'].items()} if 'profiles' in robot
                  else {robot.get('name', ''): robot.get('joint_names', ())})
        dataset = data.get('dataset', {})
        context = int(dataset.get('context', config.get('model', {}).get('context', 1024)))
        return cls(cameras=tuple(data.get('cameras', cls.cameras)), image_size=int(data.get('image_size', 64)),
                   control_hz=float(data.get('control_hz', 10.0)), context=context,
                   # Before the spec, training prompted unless prompt_prob was set to 0.
                   prompt_fraction=float(dataset.get('prompt_fraction', 0.0)) if dataset.get('prompt_prob', 1) else 0.0,
                   robots={k: v for k, v in robots.items() if v}, prompt_task=prompt_task)

    def check_setting(self, name: str, value, source: str) -> None:
        """PolicySpecError when a consumer's setting `name` (e.g. policy_node's 'rate') contradicts the spec."""
        expected = {'cameras': self.cameras, 'image_size': self.image_size, 'control_hz': self.control_hz}[name]
        same = (tuple(value) == expected if name == 'cameras'
                else abs(float(value) - float(expected)) <= 1e-9 * max(1.0, abs(float(expected))))
        if not same:
            raise PolicySpecError(f'{source}: {name} is {value!r} but the checkpoint was trained with {name} '
                                  f'{expected!r}; refusing to run out of distribution')
