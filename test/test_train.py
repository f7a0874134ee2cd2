"""Behaviour-cloning trainer: schedule, loss on the Gato mask, checkpoints, resume, the `train` command."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gato_ros.cli import main as cli
from gato_ros.core.checkpoint import load_checkpoint
from gato_ros.core.data.dataset import DatasetConfig, EpisodeDataset, collate
from gato_ros.core.model import Gato, GatoConfig
from gato_ros.core.train import TrainConfig, checkpoint_dirs, latest_checkpoint, learning_rate, train
from gato_ros.core.train.trainer import TRAINING_STATE, BehaviourCloningLoss
from test_data import synthetic_episode, write

CONTEXT = 100   # 5 timesteps of 20 tokens (two 16x16 cameras)
# Smaller than 'tiny' (whose 33025 x 256 embedding dominates a CPU step): the mechanics tests stay fast; the
# slow test below trains the real 'tiny' preset on recorded episodes.
MICRO = GatoConfig(n_layer=2, d_model=64, n_head=2, head_dim=32, d_ff=128, patch_channels=32, context=CONTEXT)


def test_learning_rate_warms_up_then_decays_to_the_floor():
    lr = [learning_rate(s, 1e-3, 10, 110, 0.1) for s in range(130)]
    assert lr[0] == pytest.approx(1e-4) and lr[9] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(lr[:10], lr[1:10]))
    assert all(a >= b for a, b in zip(lr[10:110], lr[11:110]))
    assert lr[60] == pytest.approx(0.55e-3) and lr[110] == pytest.approx(1e-4) and lr[129] == pytest.approx(1e-4)


def test_train_config_names_the_bad_field():
    with pytest.raises(ValueError, match='TrainConfig.lr must be > 0'):
        TrainConfig(lr=0.0)
    with pytest.raises(ValueError, match='TrainConfig.min_lr_ratio'):
        TrainConfig(min_lr_ratio=1.5)


def _model(seed=0) -> Gato:
    torch.manual_seed(seed)
    return Gato(MICRO)


def _dataset() -> EpisodeDataset:
    return EpisodeDataset([synthetic_episode(s, steps=12) for s in range(4)], DatasetConfig(context=CONTEXT))


CHECKPOINT_CONFIG = {'model': {}, 'tokenizer': {}, 'robot': {'joint_names': ['j']}, 'stats': {}}


@pytest.mark.parametrize('attention_window', [0, 8])   # 8: the loss runs the model's sliding-window mask too
def test_loss_is_cross_entropy_on_action_targets_only(attention_window):
    torch.manual_seed(0)
    model = Gato(dataclasses.replace(MICRO, attention_window=attention_window)).eval()
    batch = collate([_dataset()[i] for i in range(3)])
    _, reference = model(batch['tokens'], batch['local_pos'], batch['patches'], batch['patch_rows'],
                         batch['patch_cols'], loss_mask=batch['loss_mask'])
    assert BehaviourCloningLoss(model, action_head=False)(**batch).item() == pytest.approx(reference.item(), rel=1e-5)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp('ckpt')
    cfg = TrainConfig(steps=16, batch_size=4, lr=1e-2, warmup_steps=3, checkpoint_every=8, log_every=4,
                      action_head=False)  # the whole vocabulary: the loss starts at ln(33025)
    held_out = EpisodeDataset([synthetic_episode(s, steps=12) for s in (7, 8)], DatasetConfig(context=CONTEXT))
    losses = train(_model(), _dataset(), cfg, out, CHECKPOINT_CONFIG, progress=False, val_dataset=held_out)
    return out, cfg, losses


def test_tensorboard_gets_the_logged_scalars_when_installed(trained):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, cfg, _ = trained
    events = EventAccumulator(str(out / 'tensorboard'))
    events.Reload()
    assert {'loss', 'lr', 'val_loss'} <= set(events.Tags()['scalars'])
    assert [e.step for e in events.Scalars('loss')] == list(range(cfg.log_every, cfg.steps + 1, cfg.log_every))


def test_loss_drops(trained):
    out, _, losses = trained
    assert len(losses) == 16
    first, last = sum(losses[:3]) / 3, sum(losses[-3:]) / 3
    assert first > 9.5            # ~ln(33025) = 10.4 at initialisation
    assert last < first - 2.5, losses
    log = [json.loads(line) for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert [e['step'] for e in log] == [4, 8, 12, 16]
    # The held-out episodes are scored at each checkpoint. Their actions are random, like the training ones: what
    # the model memorised does not carry over, so their loss stays high (it would fall if they leaked into training).
    assert ['val_loss' in e for e in log] == [False, True, False, True]
    assert log[3]['val_loss'] > log[3]['loss'] + 2.0 and log[3]['val_loss'] == log[3]['val_loss_bc']
    png = (out / 'loss.png').read_bytes()
    assert png.startswith(b'\x89PNG') and len(png) > 10_000


def test_checkpoints_are_self_describing_and_resume_continues(trained):
    out, cfg, losses = trained
    assert [p.name for p in checkpoint_dirs(out)] == ['step-0000008', 'step-0000016']
    assert latest_checkpoint(out).name == 'step-0000016'
    _, config = load_checkpoint(out / 'step-0000016')
    assert config['train']['step'] == 16 and config['train']['lr'] == cfg.lr
    assert torch.load(out / 'step-0000016' / TRAINING_STATE, weights_only=True)['optimizer']['state']

    more = train(_model(seed=1), _dataset(), dataclasses.replace(cfg, steps=20), out, CHECKPOINT_CONFIG,
                 resume=True, progress=False)
    assert len(more) == 4                                          # steps 16..19 only
    assert more[0] < sum(losses[:3]) / 3 - 2.0                     # trained weights, not the fresh seed-1 model
    assert [p.name for p in checkpoint_dirs(out)] == ['step-0000016', 'step-0000020']  # keeps the newest 2


def test_resume_refuses_other_episodes_in_one_line(tmp_path, capsys):
    data = tmp_path / 'data'
    data.mkdir()
    for seed in range(4):
        write(synthetic_episode(seed, steps=6), data / f'ep{seed}')
    out = tmp_path / 'out'
    run = ['train', '--data', str(data), '--preset', 'tiny', '--out', str(out), '--batch-size', '2', '--context',
           str(CONTEXT), '--device', 'cpu', '--no-progress', '--resume']
    assert cli([*run, '--steps', '1', '--val-fraction', '0.25']) == 0
    _, config = load_checkpoint(latest_checkpoint(out))
    assert config['data']['validation']['fraction'] == 0.25 and config['data']['validation']['episodes'] == 1
    assert sorted(config['data']['episode_names'] + config['data']['validation']['episode_names']) == [
        'ep0', 'ep1', 'ep2', 'ep3']
    capsys.readouterr()
    write(synthetic_episode(9, steps=6), data / 'ep9')                 # the data changed
    assert cli([*run, '--steps', '2']) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f'gato-ros train: --resume: {latest_checkpoint(out)} was trained on 3 episodes, --data now '
                           'gives 4 (0 of them gone, 1 new); ')
    assert line.endswith('or add --allow-data-change'), line
    assert cli([*run, '--steps', '2', '--allow-data-change']) == 0
    assert load_checkpoint(latest_checkpoint(out))[1]['train']['step'] == 2

    # A checkpoint from before the episode list and the validation split: its seeds decide, no split is made.
    (data / 'ep9' / 'metadata.yaml').unlink()
    config_path = latest_checkpoint(out) / 'config.json'
    old = json.loads(config_path.read_text())
    old['data'] = {k: v for k, v in old['data'].items() if k not in ('episode_names', 'validation')}
    old['data']['episode_seeds'] = [0, 1, 2, 3]
    config_path.write_text(json.dumps(old))
    assert cli([*run, '--steps', '3']) == 0
    assert load_checkpoint(latest_checkpoint(out))[1]['data']['validation'] == {
        'fraction': 0.0, 'episodes': 0, 'episode_names': []}
    assert cli(['train', '--data', str(data), '--out', str(out), '--val-fraction', '1.5']) == 2
    assert 'argument --val-fraction: must be in [0, 1), got 1.5' in capsys.readouterr().err


def test_init_from_value_inputs_to_slot_inputs_keeps_the_other_weights(tmp_path, capsys):
    """--init a 'value' checkpoint into --action-inputs slot: every shared weight is carried over, the index
    embedding is new; any other change of the model is refused in one line."""
    data = tmp_path / 'data'
    data.mkdir()
    for seed in range(3):
        write(synthetic_episode(seed, steps=6), data / f'ep{seed}')
    run = ['train', '--data', str(data), '--preset', 'tiny', '--batch-size', '2', '--context', str(CONTEXT),
           '--device', 'cpu', '--no-progress', '--val-fraction', '0']
    assert cli([*run, '--out', str(tmp_path / 'value'), '--steps', '1']) == 0
    value = latest_checkpoint(tmp_path / 'value')
    assert cli([*run, '--out', str(tmp_path / 'slot'), '--steps', '1', '--lr', '1e-12', '--init', str(value),
                '--action-inputs', 'slot']) == 0
    before, after = load_checkpoint(value), load_checkpoint(latest_checkpoint(tmp_path / 'slot'))
    assert after[1]['model']['action_inputs'] == 'slot' and set(after[0]) - set(before[0]) == {'action_emb.weight'}
    for name, weight in before[0].items():
        torch.testing.assert_close(weight, after[0][name], rtol=0, atol=1e-9)   # lr 1e-12: carried over
    capsys.readouterr()
    assert cli([*run, '--out', str(tmp_path / 'other'), '--steps', '1', '--init', str(value),
                '--attention-window', '8']) == 2
    assert f'--init {value}: model' in capsys.readouterr().err
    assert cli([*run, '--out', str(tmp_path / 'bad'), '--action-inputs', 'bins']) == 2
    assert "argument --action-inputs: invalid choice: 'bins'" in capsys.readouterr().err


@pytest.mark.slow
def test_train_command_tiny_on_recorded_episodes_loss_drops(tmp_path):
    data = tmp_path / 'data'
    assert cli(['record', '--robot', 'ur5e', '--episodes', '3', '--out', str(data), '--image-size', '16',
                '--max-time', '4', '--json']) == 0
    out = tmp_path / 'out'
    assert cli(['train', '--data', str(data), '--include-failures', '--preset', 'tiny', '--out', str(out),
                '--steps', '20', '--batch-size', '4', '--lr', '2e-3', '--warmup', '5', '--context', str(CONTEXT),
                '--checkpoint-every', '10', '--no-progress', '--relabel']) == 0
    log = [json.loads(line) for line in (out / 'train_log.jsonl').read_text().splitlines()]
    assert log[-1]['step'] == 20 and log[-1]['loss'] < 8.0     # from ~10.4 = ln(33025) at initialisation
    _, config = load_checkpoint(latest_checkpoint(out))
    assert config['robot']['joint_names'][0] == 'shoulder_pan_joint' and 'ur5e' in config['robot']['specs']
    assert config['data']['image_size'] == 16 and config['data']['episodes'] == 2     # one of 3 held out
    assert config['data']['validation']['episodes'] == 1 and 'val_loss' in log[-1]
    assert config['model']['context'] == CONTEXT and config['preset'] == 'tiny'
    assert '--preset tiny' in config['command'] and f'--data {data} ' in config['command']
    assert config['data']['relabelled'] is True
    assert config['git_revision'] and config['tokenizer']['vocab_size'] == 33025
    assert config['action_space']['dim'] == 5


@pytest.mark.slow
def test_ddp_under_torchrun_two_cpu_processes(tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    for seed in range(4):
        write(synthetic_episode(seed), data / f'ep{seed}')
    out = tmp_path / 'out'
    env = dict(os.environ, OMP_NUM_THREADS='1')
    cmd = [str(Path(sys.executable).with_name('torchrun')), '--standalone', '--nproc_per_node', '2', '-m',
           'gato_ros.cli', 'train', '--data', str(data), '--preset', 'tiny', '--out', str(out), '--steps', '4',
           '--batch-size', '2', '--context', str(CONTEXT), '--device', 'cpu', '--no-progress']
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    _, config = load_checkpoint(latest_checkpoint(out))
    assert config['train']['world_size'] == 2 and config['train']['step'] == 4
