"""The command line's errors: every bad input is one line on stderr naming it, exit status 2, and a traceback only
under --debug; --version and --log-level."""

import importlib.metadata
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import torch

from gato_ros.cli import main

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINT = ROOT / 'checkpoints' / 'gato-stack'

# (id, argv, the start of the one stderr line); {tmp} is the test's empty temporary folder
BAD_INPUTS = [
    ('eval-missing-checkpoint', ['eval', '--checkpoint', '{tmp}/missing'],
     'gato-ros eval: argument --checkpoint: {tmp}/missing: no such directory'),
    ('export-missing-checkpoint', ['export', '--checkpoint', '{tmp}/missing', '--out', '{tmp}/out'],
     'gato-ros export: argument --checkpoint: {tmp}/missing: no such directory'),
    ('recipe-missing-init', ['recipe', '--out', '{tmp}/run', '--init', '{tmp}/missing'],
     'gato-ros recipe: argument --init: {tmp}/missing: no such directory'),
    ('recipe-init-other-cameras',
     ['recipe', '--out', '{tmp}/run', '--init', str(CHECKPOINT), '--cameras', 'front_left'],
     f"gato-ros recipe: --init {CHECKPOINT}: cameras is ['front_left'] but the checkpoint was trained with cameras "
     "('front_left', 'wrist')"),
    ('recipe-init-other-robot', ['recipe', '--out', '{tmp}/run', '--init', str(CHECKPOINT), '--robot', 'sawyer'],
     f"gato-ros recipe: --init {CHECKPOINT} was trained for ur5e: ['shoulder_pan_joint', "),
    ('eval-folder-without-checkpoint', ['eval', '--checkpoint', '{tmp}'],
     'gato-ros eval: argument --checkpoint: {tmp}: no checkpoint (config.json) and no step-*/ checkpoint inside'),
    ('weights-file-as-checkpoint', ['eval', '--checkpoint', f'{CHECKPOINT}/model.safetensors'],
     f'gato-ros eval: argument --checkpoint: {CHECKPOINT}/model.safetensors is a file; give the checkpoint '
     f'directory (config.json + model.safetensors), e.g. {CHECKPOINT}'),
    ('robot-ur10', ['eval', '--checkpoint', str(CHECKPOINT), '--robot', 'ur10'],
     "gato-ros eval: argument --robot: unknown robot 'ur10'; known: sawyer, ur5e, or a profile YAML path"),
    ('task-purple-blue', ['eval', '--checkpoint', str(CHECKPOINT), '--task', 'purple,blue'],
     "gato-ros eval: argument --task: task 'purple,blue': unknown colour 'purple'; the blocks are blue, green, red"),
    ('record-task-red-red', ['record', '--episodes', '1', '--out', '{tmp}', '--task', 'red,red'],
     "gato-ros record: argument --task: task 'red,red': the two blocks must differ"),
    ('device-cuda-without-cuda', ['eval', '--checkpoint', str(CHECKPOINT), '--device', 'cuda'],
     'gato-ros eval: argument --device: cuda: '),
    ('train-steps-negative', ['train', '--data', '{tmp}', '--out', '{tmp}/run', '--steps', '-5'],
     'gato-ros train: argument --steps: must be >= 1, got -5'),
    ('record-image-size-50', ['record', '--episodes', '1', '--out', '{tmp}', '--image-size', '50'],
     'gato-ros record: argument --image-size: 50 px is not a multiple of the 16 px image patch; use 48 or 64'),
    ('train-no-episodes', ['train', '--data', '{tmp}', '--out', '{tmp}/run', '--steps', '5'],
     'gato-ros train: {tmp}: no usable episodes'),
    ('sim-task-red-pink', ['sim', 'expert', '--task', 'red', 'pink'],
     "gato-ros sim: SimConfig.task=('red', 'pink') is invalid"),
    ('bench-engine-int8-fp32', ['bench', 'engine', '--quantize', 'int8'],
     "gato-ros bench engine: EngineConfig.quantize='int8' needs dtype='bf16'"),
    ('bench-engine-steps-0', ['bench', 'engine', '--steps', '0'], 'gato-ros bench engine: --steps must be >= 1'),
    ('bench-engine-cuda-without-cuda', ['bench', 'engine', '--device', 'cuda'],
     'gato-ros bench engine: --device cuda: no CUDA device is available'),
    ('unknown-command', ['fly'], "gato-ros: argument COMMAND: invalid choice: 'fly'"),
    ('unknown-log-level', ['--log-level', 'loud', 'info'], "gato-ros: argument --log-level: invalid choice: 'loud'"),
]


@pytest.mark.parametrize('argv, line', [case[1:] for case in BAD_INPUTS], ids=[case[0] for case in BAD_INPUTS])
def test_a_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, line):
    if '--device' in argv and torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and 'Traceback' not in err, err
    assert err.startswith(line.format(tmp=tmp_path)), err


def test_debug_adds_the_traceback(capsys):
    assert main(['--debug', 'sim', 'expert', '--task', 'red', 'pink']) == 2
    err = capsys.readouterr().err
    assert err.startswith('Traceback')
    assert err.splitlines()[-1].startswith("gato-ros sim: SimConfig.task=('red', 'pink') is invalid")


def test_version_is_the_package_version(capsys):
    assert main(['--version']) == 0
    version = ET.parse(ROOT / 'package.xml').getroot().findtext('version')
    assert capsys.readouterr().out.strip() == f'gato-ros {version}'
    assert importlib.metadata.version('gato_ros') == version  # setup.py's


def gato_ros(*argv, **kwargs):
    return subprocess.Popen([sys.executable, '-m', 'gato_ros.cli', *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, 'OMP_NUM_THREADS': '1'}, **kwargs)


def test_log_level_filters_python_warnings(tmp_path):
    (tmp_path / 'broken.mcap').write_bytes(b'not an mcap file')  # the loader warns and skips it
    train = ('train', '--data', str(tmp_path), '--out', str(tmp_path / 'run'))
    shown = gato_ros(*train).communicate(timeout=120)[0].splitlines()
    assert shown[0].startswith(f'WARNING gato_ros: UserWarning: skipping episode: {tmp_path}/broken.mcap: ')
    assert shown[1:] == [f'gato-ros train: {tmp_path}: no usable episodes (record some with `gato-ros record`)']
    assert gato_ros('--log-level', 'error', *train).communicate(timeout=120)[0].splitlines() == shown[1:]


def test_log_level_reaches_the_ros_nodes():  # 9 s here
    proc = gato_ros('--log-level', 'warn', 'bringup', '--robot', 'ur5e', '--allow-random-weights')
    lines = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not any('RANDOM WEIGHTS' in line for line in lines):  # starting
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
    proc.send_signal(signal.SIGINT)
    lines += proc.communicate(timeout=30)[0].splitlines()
    assert proc.returncode == 0, lines
    assert any('[WARN]' in line and 'RANDOM WEIGHTS' in line for line in lines), lines
    assert not [line for line in lines if '[INFO]' in line]
