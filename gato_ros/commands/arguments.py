"""Argument types shared by the commands: each checks one kind of input when the command line is parsed and
says what is wrong with it in one line (argparse reports it as `argument --flag: <message>`, exit status 2)."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from gato_ros.resources import resource_path


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not an integer') from None
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be >= 1, got {value}')
    return value


def fraction(text: str) -> float:
    """A share in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f'{text!r} is not a number') from None
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f'must be in [0, 1), got {value}')
    return value


def add_grip_hysteresis(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--grip-hysteresis', type=fraction, default=None, metavar='BAND',
                        help="the learned grip changes side only past +-BAND (default 0.5, robots.GripLatch; 0: "
                             'the grip as decoded)')


def grip_hysteresis(args: argparse.Namespace) -> dict:
    """GatoPolicy.from_checkpoint keyword for --grip-hysteresis (none: the policy's default band)."""
    return {} if args.grip_hysteresis is None else {'grip_hysteresis': args.grip_hysteresis}


def robot(text: str) -> str:
    """A packaged robot profile name (config/robots/<name>.yaml) or a profile YAML path."""
    if Path(text).suffix in ('.yaml', '.yml'):
        if not Path(text).is_file():
            raise argparse.ArgumentTypeError(f'robot profile {text}: no such file')
        return text
    known = sorted(path.stem for path in resource_path('config', 'robots').glob('*.yaml'))
    if text not in known:
        raise argparse.ArgumentTypeError(f"unknown robot {text!r}; known: {', '.join(known)}, or a profile YAML path")
    return text


def task_pair(text: str) -> tuple[str, str]:
    """'top,bottom': two different block colours."""
    from gato_ros.core.sim.task import BLOCK_COLORS

    parts = tuple(p.strip() for p in text.split(','))
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError(f"task must be 'top,bottom' (e.g. red,blue), got {text!r}")
    unknown = [p for p in parts if p not in BLOCK_COLORS]
    if unknown or parts[0] == parts[1]:
        problem = f'unknown colour {unknown[0]!r}' if unknown else 'the two blocks must differ'
        raise argparse.ArgumentTypeError(f"task {text!r}: {problem}; the blocks are {', '.join(sorted(BLOCK_COLORS))}")
    return parts


def camera(text: str) -> str:
    """A simulated camera (gato_ros.core.sim.CAMERA_NAMES)."""
    from gato_ros.core.sim.scene import CAMERA_NAMES

    if text not in CAMERA_NAMES:
        raise argparse.ArgumentTypeError(f"unknown camera {text!r}; the scene's cameras: {', '.join(CAMERA_NAMES)}")
    return text


def image_size(text: str) -> int:
    """Square camera resolution: a whole number of the tokenizer's image patches."""
    from gato_ros.core.tokenizer.image import PATCH_SIZE

    size = positive_int(text)
    if size % PATCH_SIZE:
        below = max(PATCH_SIZE, size // PATCH_SIZE * PATCH_SIZE)
        raise argparse.ArgumentTypeError(f'{size} px is not a multiple of the {PATCH_SIZE} px image patch; '
                                         f'use {below} or {below + PATCH_SIZE}')
    return size


def torch_device(text: str) -> str:
    """cpu, cuda or cuda:N, and only a CUDA device this machine has."""
    import torch

    try:
        device = torch.device(text)
    except RuntimeError:
        device = None
    if device is None or device.type not in ('cpu', 'cuda'):
        raise argparse.ArgumentTypeError(f'{text!r} is not a torch device; use cpu, cuda or cuda:N')
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            why = 'this torch build has no CUDA' if torch.version.cuda is None else 'no CUDA GPU is visible'
            raise argparse.ArgumentTypeError(f'{text}: {why} (torch {torch.__version__}); use --device cpu')
        if device.index is not None and device.index >= count:
            raise argparse.ArgumentTypeError(f'{text}: this machine has {count} CUDA device(s), '
                                             f'cuda:0..cuda:{count - 1}')
    return text


def checkpoint(text: str) -> Path:
    """A checkpoint directory, or a training --out directory (resolved to its newest checkpoint)."""
    from gato_ros.core.train import latest_checkpoint

    path = Path(text)
    if path.is_file():
        raise argparse.ArgumentTypeError(f'{text} is a file; give the checkpoint directory (config.json + '
                                         f'model.safetensors), e.g. {path.parent}')
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f'{text}: no such directory')
    try:
        return latest_checkpoint(path)
    except FileNotFoundError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def command_line(command: str, args: argparse.Namespace, prefix: str = 'gato-ros') -> str:
    """`prefix command --option value ...`: the command that reproduces a run, every option spelled out (a list
    as `--option a b`, for nargs='+' options; a pair such as --task as 'a,b')."""
    parts = []
    for key, value in vars(args).items():
        if value is None or value is False:
            continue
        parts.append(f"--{key.replace('_', '-')}")
        if value is not True:
            parts += [','.join(v) if isinstance(v, tuple) else str(v) for v in (value if isinstance(value, list)
                                                                              else [value])]
    return f'{prefix} {command} {shlex.join(parts)}'
