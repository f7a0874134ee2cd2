"""Self-describing checkpoints: model.safetensors (weights) + config.json (everything needed to use them).

config.json = {"format_version": 1, "model": {...}, "tokenizer": {...}, "robot": {"joint_names": [...], ...},
"stats": {...}}. Loading is strict: any missing, truncated or inconsistent part raises CheckpointError naming
the file and the problem, so a policy never starts from a half-written or mismatched checkpoint.
"""

import json
import os
import pathlib
from collections.abc import Iterable, Mapping

import safetensors.torch
import torch
from safetensors import SafetensorError

FORMAT_VERSION = 1
WEIGHTS_FILE = 'model.safetensors'
CONFIG_FILE = 'config.json'
REQUIRED_SECTIONS = ('model', 'tokenizer', 'robot', 'stats')


class CheckpointError(Exception):
    """A checkpoint cannot be written or used; the message names the file and the problem."""


def _check_config(config, source: str) -> None:
    if not isinstance(config, Mapping):
        raise CheckpointError(f'{source}: config must be a JSON object, got {type(config).__name__}')
    for section in REQUIRED_SECTIONS:
        if section not in config:
            raise CheckpointError(f"{source}: missing config section '{section}' "
                                  f'(required: {", ".join(REQUIRED_SECTIONS)})')
        if not isinstance(config[section], Mapping):
            raise CheckpointError(f"{source}: config section '{section}' must be an object, "
                                  f'got {type(config[section]).__name__}')
    joints = config['robot'].get('joint_names')
    if not (isinstance(joints, list | tuple) and joints and all(isinstance(j, str) for j in joints)):
        raise CheckpointError(f"{source}: 'robot.joint_names' must be a non-empty list of joint names, got {joints!r}")


def _atomic_write(path: pathlib.Path, write) -> None:
    """Write through a temporary file and rename, so a crash never leaves a half-written file under `path`."""
    tmp = path.with_name(f'.{path.name}.tmp')
    write(tmp)
    os.replace(tmp, path)


def save_checkpoint(directory, state_dict: Mapping[str, torch.Tensor], config: Mapping) -> pathlib.Path:
    """Write `state_dict` and `config` (sections model, tokenizer, robot, stats) into `directory`."""
    directory = pathlib.Path(directory)
    _check_config(config, f'{directory / CONFIG_FILE} (to save)')
    try:
        text = json.dumps({'format_version': FORMAT_VERSION, **config}, indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f'{directory / CONFIG_FILE} (to save): config is not plain JSON: {exc}') from None
    tensors, seen_storage = {}, set()
    for name, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{directory / WEIGHTS_FILE} (to save): '{name}' is a {type(value).__name__}, "
                                  f'not a tensor')
        tensor = value.detach().cpu().contiguous()
        # safetensors refuses tensors sharing memory (e.g. the tied embedding / output head): store a copy.
        if tensor.untyped_storage().data_ptr() in seen_storage:
            tensor = tensor.clone()
        seen_storage.add(tensor.untyped_storage().data_ptr())
        tensors[name] = tensor
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(directory / WEIGHTS_FILE, lambda p: safetensors.torch.save_file(tensors, str(p)))
    _atomic_write(directory / CONFIG_FILE, lambda p: p.write_text(text + '\n'))
    return directory


def load_checkpoint(directory, expected_keys: Iterable[str] | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """(state_dict on CPU, config) from `directory`; with expected_keys, the tensor names must match exactly."""
    directory = pathlib.Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f'{directory}: checkpoint directory does not exist')
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise CheckpointError(f'{path}: file is missing')
    try:
        config = json.loads(config_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f'{config_path}: invalid JSON at line {exc.lineno} '
                              f'column {exc.colno}: {exc.msg}') from None
    except UnicodeDecodeError as exc:
        raise CheckpointError(f'{config_path}: not UTF-8 text ({exc.reason})') from None
    _check_config(config, str(config_path))
    if config.get('format_version') != FORMAT_VERSION:
        raise CheckpointError(f"{config_path}: format_version is {config.get('format_version')!r}, "
                              f'this code reads {FORMAT_VERSION}')
    try:
        state_dict = safetensors.torch.load_file(str(weights_path), device='cpu')
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f'{weights_path}: truncated or corrupt safetensors file ({exc})') from None
    if expected_keys is not None:
        _check_keys(state_dict.keys(), set(expected_keys), str(weights_path))
    return state_dict, config


def _check_keys(found: Iterable[str], expected: set[str], source: str) -> None:
    found = set(found)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    problems = ([f'missing tensor(s) {", ".join(repr(k) for k in missing[:5])}'
                 + (f' and {len(missing) - 5} more' if len(missing) > 5 else '')] if missing else [])
    problems += ([f'unexpected tensor(s) {", ".join(repr(k) for k in unexpected[:5])}'
                  + (f' and {len(unexpected) - 5} more' if len(unexpected) > 5 else '')] if unexpected else [])
    if problems:
        raise CheckpointError(f'{source}: ' + '; '.join(problems))


def check_state_dict(state_dict: Mapping[str, torch.Tensor], model_state_dict: Mapping[str, torch.Tensor],
                     source: str = WEIGHTS_FILE) -> None:
    """Raise CheckpointError unless `state_dict` (from a checkpoint) has exactly the model's tensor names and shapes."""
    _check_keys(state_dict.keys(), set(model_state_dict.keys()), source)
    mismatched = [f"tensor '{name}' has shape {tuple(state_dict[name].shape)}, model expects {tuple(t.shape)}"
                  for name, t in model_state_dict.items() if tuple(state_dict[name].shape) != tuple(t.shape)]
    if mismatched:
        more = f' (and {len(mismatched) - 3} more mismatched tensors)' if len(mismatched) > 3 else ''
        raise CheckpointError(f'{source}: ' + '; '.join(mismatched[:3]) + more)


def export_checkpoint(source, destination, dtype: torch.dtype = torch.bfloat16, extra_config: Mapping | None = None
                      ) -> pathlib.Path:
    """Copy a checkpoint for deployment with its floating-point weights cast to `dtype` (bf16 halves the file;
    the engine casts to its own dtype at load) and `extra_config` merged into config.json. Training state
    (optimizer, schedule) is not copied."""
    state_dict, config = load_checkpoint(source)
    weights = {name: t.to(dtype) if t.is_floating_point() else t for name, t in state_dict.items()}
    config = {key: value for key, value in config.items() if key != 'format_version'}
    config.update({'weights_dtype': str(dtype).removeprefix('torch.'), **(extra_config or {})})
    return save_checkpoint(destination, weights, config)
