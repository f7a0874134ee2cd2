"""Observation building, checkpoint -> policy (joint-spec check, multi-robot checkpoints), act()."""

import numpy as np
import pytest
import torch

from gato_ros.core.checkpoint import CheckpointError, save_checkpoint
from gato_ros.core.model import Gato, GatoConfig
from gato_ros.core.observation import build_observation
from gato_ros.core.policy import GatoPolicy, PolicyError, PolicyStatus
from gato_ros.core.robots import ACTION_DIM, load_profile
from gato_ros.core.tokenizer import tokenizer_config

MICRO = GatoConfig(n_layer=2, d_model=64, n_head=2, head_dim=32, d_ff=128, patch_channels=32)


@pytest.fixture(scope='module')
def profiles():
    return load_profile('ur5e'), load_profile('sawyer')


def _observation(profile, seed=0, **overrides):
    rng = np.random.default_rng(seed)
    args = dict(images={'left': rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),
                        'right': rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)},
                q=rng.uniform(-1, 1, len(profile.joint_names)), gripper=0.3, tool_pos=[0.5, 0.0, 0.2], tool_yaw=np.pi)
    return build_observation(**{**args, **overrides})


def test_build_observation_layout(profiles):
    ur5e, _ = profiles
    obs = _observation(ur5e)
    assert sorted(obs) == ['image_left', 'image_right', 'proprio_joints', 'proprio_tool']
    assert obs['proprio_joints'].dtype == np.float32 and obs['proprio_joints'].shape == (6,)
    np.testing.assert_allclose(obs['proprio_tool'], [0.5, 0.0, 0.2, 0.0, -1.0, 0.3], atol=1e-6)


@pytest.mark.parametrize('field, value, match', [
    ('q', [0.0, np.nan, 0, 0, 0, 0], 'proprio_joints'), ('gripper', np.inf, 'gripper'),
    ('tool_pos', [0, 0, np.nan], 'tool_pos'), ('tool_pos', [0, 0], r'tool_pos: expected shape \(3,\)'),
    ('tool_yaw', float('nan'), 'tool_yaw'), ('images', {'left': np.zeros((8, 8), np.uint8)}, 'image_left')])
def test_build_observation_rejects_bad_fields(profiles, field, value, match):
    with pytest.raises(ValueError, match=match):
        _observation(profiles[0], **{field: value})


def _save(tmp_path, robot, model_config=MICRO.to_dict(), tokenizer=None):
    torch.manual_seed(0)
    model = Gato(MICRO)
    save_checkpoint(tmp_path, model.state_dict(), {'model': model_config, 'tokenizer': tokenizer or tokenizer_config(),
                                                   'stats': {}, 'robot': robot})
    return model


def test_checkpoint_policy_acts_like_its_model(tmp_path, profiles):
    ur5e, _ = profiles
    model = _save(tmp_path, {'name': 'ur5e', 'joint_names': list(ur5e.joint_names)})
    policy = GatoPolicy.from_checkpoint(tmp_path, ur5e)
    assert not policy.random_weights
    torch.testing.assert_close(policy.model.wte.weight, model.wte.weight)
    results = [policy.act(_observation(ur5e, seed)) for seed in range(3)]
    for r in results:
        assert r.status is PolicyStatus.OK and r.action.shape == (ACTION_DIM,) and r.latency_s > 0
        assert np.all(np.abs(r.action) <= 1.0)
        assert r.action[4] in (-1.0, 1.0)   # the grip is latched (robots.GripLatch), not the decoded value
    policy.reset()
    again = [policy.act(_observation(ur5e, seed)).action for seed in range(3)]
    np.testing.assert_array_equal([r.action for r in results], again)
    raw = GatoPolicy.from_checkpoint(tmp_path, ur5e, grip_hysteresis=0.0)
    decoded = [raw.act(_observation(ur5e, seed)).action for seed in range(3)]
    np.testing.assert_array_equal(np.array(decoded)[:, :4], np.array(again)[:, :4])
    for grip, latched in zip(np.array(decoded)[:, 4], np.array(again)[:, 4]):
        assert abs(grip) <= 0.5 or np.sign(grip) == latched


def test_joint_mismatch_is_refused_naming_both(tmp_path, profiles):
    ur5e, sawyer = profiles
    _save(tmp_path, {'name': 'ur5e', 'joint_names': list(ur5e.joint_names)})
    with pytest.raises(PolicyError, match=r"shoulder_pan_joint.*'sawyer' has joints \['right_j0'"):
        GatoPolicy.from_checkpoint(tmp_path, sawyer)
    swapped = list(ur5e.joint_names)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    _save(tmp_path, {'joint_names': swapped})                 # same joints, other order
    with pytest.raises(PolicyError, match='refusing to start'):
        GatoPolicy.from_checkpoint(tmp_path, ur5e)


def test_one_checkpoint_two_arms(tmp_path, profiles):
    ur5e, sawyer = profiles
    _save(tmp_path, {'joint_names': list(ur5e.joint_names),
                     'profiles': {'ur5e': list(ur5e.joint_names), 'sawyer': list(sawyer.joint_names)}})
    for profile in profiles:
        result = GatoPolicy.from_checkpoint(tmp_path, profile).act(_observation(profile))
        assert result.status is PolicyStatus.OK
    _save(tmp_path, {'joint_names': list(ur5e.joint_names), 'profiles': {'ur5e': list(ur5e.joint_names)}})
    with pytest.raises(PolicyError, match='sawyer'):
        GatoPolicy.from_checkpoint(tmp_path, sawyer)


def test_bad_model_or_tokenizer_config_in_checkpoint(tmp_path, profiles):
    ur5e, _ = profiles
    robot = {'joint_names': list(ur5e.joint_names)}
    _save(tmp_path, robot, model_config={**MICRO.to_dict(), 'n_layer': 0})
    with pytest.raises(CheckpointError, match='config.json: GatoConfig.n_layer must be >= 1'):
        GatoPolicy.from_checkpoint(tmp_path, ur5e)
    _save(tmp_path, robot, model_config={**MICRO.to_dict(), 'n_layer': 3})
    with pytest.raises(CheckpointError, match='missing tensor'):
        GatoPolicy.from_checkpoint(tmp_path, ur5e)
    _save(tmp_path, robot, tokenizer={**tokenizer_config(), 'num_bins': 256})
    with pytest.raises(CheckpointError, match='num_bins'):
        GatoPolicy.from_checkpoint(tmp_path, ur5e)


def test_random_policy_is_flagged_and_reports_bad_observations(profiles):
    ur5e, _ = profiles
    policy = GatoPolicy.random('tiny', ur5e, deadline_s=1e-9)
    assert policy.random_weights and policy.config['random_weights']
    result = policy.act(_observation(ur5e))
    assert result.status is PolicyStatus.LATE and result.action.shape == (ACTION_DIM,)
    bad = policy.act({'proprio': np.array([np.nan], np.float32)})
    assert bad.status is PolicyStatus.INVALID_OBSERVATION and bad.action is None and 'proprio' in bad.reason


def test_checkpoint_policy_runs_on_its_training_window(tmp_path, profiles):
    ur5e, _ = profiles
    torch.manual_seed(0)
    model = Gato(MICRO)
    save_checkpoint(tmp_path, model.state_dict(), {
        'model': MICRO.to_dict(), 'tokenizer': tokenizer_config(), 'stats': {},
        'robot': {'name': 'ur5e', 'joint_names': list(ur5e.joint_names)}, 'data': {'dataset': {'context': 128}}})
    assert GatoPolicy.from_checkpoint(tmp_path, ur5e).engine.max_context == 128
    assert GatoPolicy.from_checkpoint(tmp_path, ur5e, max_context=256).engine.max_context == 256


def test_gripper_closure_is_the_mean_finger_travel():
    from gato_ros.core.observation import gripper_closure
    closed, opened = [0.0, 0.0], [0.04, 0.04]
    np.testing.assert_allclose(gripper_closure([[0.04, 0.04], [0.0, 0.0], [0.02, 0.01], [0.05, -0.01]],
                                               closed, opened), [0.0, 1.0, 0.625, 0.5])
    assert gripper_closure([0.06, 0.06], closed, opened) == 0.0  # beyond open clips to 0
