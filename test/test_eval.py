"""Closed-loop evaluation: metrics, artefacts (video, latency histogram) and the `eval` command."""

import json

import numpy as np
import pytest
import torch

from gato_ros.cli import main as cli
from gato_ros.commands.train import robot_section
from gato_ros.core.checkpoint import save_checkpoint
from gato_ros.core.evaluation import (EpisodeProgress, EvalSummary, FrameRecorder, PhaseProgress,
                                     write_latency_histogram, write_video)
from gato_ros.core.model import Gato, GatoConfig
from gato_ros.core.robots import ACTION_DIM, Kinematics
from gato_ros.core.sim import SimConfig, StackingSim
from gato_ros.core.sim.expert import Phase, ScriptedExpert
from gato_ros.core.sim.runner import EpisodeResult, RunnerConfig, make_safety_filter, run_episode
from gato_ros.core.tokenizer.sequence import tokenizer_config


def _result(seed, success, statuses, steps=50):
    return EpisodeResult(seed=seed, success=success, steps=steps, sim_time=steps / 10,
                         safety_interventions=sum(n for k, n in statuses.items() if k != 'OK'),
                         safety_statuses=statuses, task=None)


def test_metrics_rates_deadlines_and_safety():
    summary = EvalSummary()
    summary.add(_result(0, True, {'OK': 2500}), [0.02] * 49 + [0.2], 0,
                EpisodeProgress(Phase.DONE, 0.001, 1, 60, (10, 0, 0, 0, 0, 0, 0, 0, 40)))
    summary.add(_result(1, False, {'OK': 2400, 'DECELERATE_FOR_WORKSPACE': 100}), [0.04] * 50, 0,
                EpisodeProgress(Phase.LIFT, 0.004, 12, 9, (20, 0, 0, 30, 0, 0, 0, 0, 0)))
    summary.add(_result(2, True, {'OK': 2490, 'STALE_INPUT': 10}), [0.03] * 50, 2,
                EpisodeProgress(Phase.DONE, 0.2, 2, 40))
    m = summary.metrics(deadline_s=0.1)
    assert m['episodes'] == 3 and m['success_rate'] == pytest.approx(2 / 3)
    mean = (0.02 * 49 + 0.2 + 0.04 * 50 + 0.03 * 50) / 150
    assert m['policy_compute_hz'] == pytest.approx(1 / mean, rel=1e-3)
    assert m['command_hz'] == pytest.approx(500.0)                 # 7500 safety ticks over 15 s
    assert m['deadline_miss_rate'] == pytest.approx(1 / 150)
    assert m['latency']['p50_ms'] == pytest.approx(30.0) and m['latency']['max_ms'] == pytest.approx(200.0)
    safety = m['safety_interventions']
    assert safety['ticks'] == 110 and safety['by_status'] == {'DECELERATE_FOR_WORKSPACE': 100, 'STALE_INPUT': 10}
    assert safety['halt_episode_fraction'] == pytest.approx(1 / 3)  # only STALE_INPUT is a halt-kind status
    assert m['failed_policy_steps'] == 2
    assert list(m['furthest_phase']) == [p.value for p in Phase]     # in task order
    assert m['furthest_phase']['done'] == 2 and m['furthest_phase']['lift'] == 1
    assert sum(m['furthest_phase'].values()) == 3
    assert m['closest_xy_m_p50'] == pytest.approx(0.004) and m['closest_within_1cm'] == 2
    assert m['gripper_closings_mean'] == pytest.approx(5.0) and m['longest_hold_steps_p50'] == 40
    share = m['step_share_by_phase']                              # the third episode's steps are unknown
    assert share['approach'] == pytest.approx(0.3) and share['lift'] == pytest.approx(0.3)
    assert share['done'] == pytest.approx(0.4) and sum(share.values()) == pytest.approx(1.0)


class _Still:
    """An actor that never moves the arm."""

    def act(self, observation):
        return np.r_[np.zeros(ACTION_DIM - 1), -1.0]


@pytest.mark.parametrize('actor, furthest', [('expert', Phase.RETREAT), ('still', Phase.APPROACH)])
def test_phase_progress_follows_the_episode(actor, furthest):
    """The expert's own episode passes every phase up to the retreat (it ends at success, as the tool rises);
    an arm that never moves stays in approach."""
    sim = StackingSim(SimConfig(robot='ur5e'))
    kin = Kinematics(sim.profile)
    expert = ScriptedExpert(task=sim.config.task, block_size=sim.config.block_size)
    progress = PhaseProgress(ScriptedExpert(task=sim.config.task, block_size=sim.config.block_size))
    config = RunnerConfig(max_time=20.0)
    try:
        run_episode(sim, expert if actor == 'expert' else _Still(), make_safety_filter(sim.profile, kin, config), kin,
                    seed=1, config=config, on_step=progress)
    finally:
        sim.close()
    progress = progress.result()
    assert progress.furthest is furthest
    if actor == 'expert':
        assert progress.closest_xy < 0.01                 # the expert centres over the block to grasp it
        assert progress.closings == 1 and progress.longest_hold > 20   # closes once and carries
        assert all(progress.phase_steps[:-1])            # a step in every phase but done (it ends at success)
    else:
        assert progress.closest_xy > 0.05                 # the arm stays at its start, away from the blocks
        assert progress.closings == progress.longest_hold == 0
        assert progress.phase_steps[0] == sum(progress.phase_steps) == 200   # 20 s at 10 Hz, all in approach


def test_video_and_histogram_files(tmp_path):
    frames = FrameRecorder(scale=2)

    class Step:
        class observation:
            images = {'a': np.zeros((16, 16, 3), np.uint8), 'b': np.full((16, 16, 3), 255, np.uint8)}

    for _ in range(5):
        frames(Step)
    assert frames.frames[0].shape == (32, 64, 3) and frames.frames[0][0, -1, 0] == 255   # side by side, x2
    video = write_video(frames.frames, tmp_path / 'v.mp4', fps=10)
    assert video.endswith(('.mp4', '.gif')) and (tmp_path / video.split('/')[-1]).stat().st_size > 0
    png = write_latency_histogram(np.random.default_rng(0).uniform(0.01, 0.2, 100), 0.1, tmp_path / 'h.png')
    assert open(png, 'rb').read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.slow
def test_eval_command_closed_loop_with_prompt(tmp_path, capsys):
    """A random-weights checkpoint through the whole loop: sim + GatoPolicy + SafetyFilter, with a prompt from
    a scripted demonstration of another pair. Success is not expected; the report and files are."""
    torch.manual_seed(0)
    model_config = GatoConfig(n_layer=1, d_model=64, n_head=2, head_dim=32, d_ff=128, patch_channels=32,
                              context=400)
    config = {'model': model_config.to_dict(), 'tokenizer': tokenizer_config(), 'robot': robot_section(['ur5e']),
              'stats': {}, 'data': {'cameras': ['front_left', 'front_right'], 'image_size': 32, 'control_hz': 10.0,
                                    'dataset': {'prompt_fraction': 0.25}}}
    save_checkpoint(tmp_path / 'ckpt', Gato(model_config).state_dict(), config)
    out = tmp_path / 'eval'
    assert cli(['eval', '--checkpoint', str(tmp_path / 'ckpt'), '--robot', 'ur5e', '--episodes', '2',
                '--max-time', '1.0', '--prompt-task', 'green,red', '--out', str(out), '--json']) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report['episodes'] == 2 and report['task'] == 'green,red' and report['first_seed'] == 1_000_000
    assert 0 < report['prompt_tokens'] <= 100
    assert report['policy_steps'] == 20 and report['policy_compute_hz'] > 0 and 0 <= report['deadline_miss_rate'] <= 1
    assert report['command_hz'] == pytest.approx(500.0, rel=0.01)
    assert set(report['safety_interventions']) == {'ticks', 'tick_fraction', 'by_status', 'halt_episode_fraction'}
    assert (out / 'latency_histogram.png').stat().st_size > 0
    assert (out / 'eval.json').exists() and len(json.loads((out / 'eval.json').read_text())['per_episode']) == 2
    assert report['files']['video'].endswith(('.mp4', '.gif'))
