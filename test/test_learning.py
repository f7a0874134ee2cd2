"""The learning recipe's parts: HL-Gauss targets, the action-bin head, auxiliary block targets, expected-value
decoding, the PolicySpec contract, DAgger labelling and the teacher-forced diagnosis."""

import dataclasses

import numpy as np
import pytest
import torch

from gato_ros.core.data import EpisodeWriter, load_episodes, read_episode
from gato_ros.core.data.dataset import AUX_DIM, DatasetConfig, EpisodeDataset, EpisodeTokens, aux_targets, collate
from gato_ros.core.data.mcap_io import BLOCK_ORDER
from gato_ros.core.diagnosis import diagnose
from gato_ros.core.engine import EngineConfig, GatoEngine
from gato_ros.core.model import Gato, GatoConfig
from gato_ros.core.policy_spec import PolicySpec, PolicySpecError
from gato_ros.core.tokenizer import CONTINUOUS_OFFSET, NUM_BINS
from gato_ros.core.train import TrainConfig, train
from gato_ros.core.train.trainer import TRAINING_STATE, BehaviourCloningLoss, hl_gauss_targets
from test_data import synthetic_episode

MICRO = GatoConfig(n_layer=2, d_model=64, n_head=2, head_dim=32, d_ff=128, patch_channels=32, context=100)


def with_blocks(episode, seed=0):
    """The synthetic episode with block poses: upright cubes drifting across the table."""
    rng = np.random.default_rng(seed)
    T = len(episode)
    blocks = np.zeros((T, len(BLOCK_ORDER), 7))
    drift = np.linspace(0, 0.05, T)[:, None, None]
    blocks[..., :2] = rng.uniform([0.4, -0.2], [0.65, 0.2], (1, len(BLOCK_ORDER), 2)) + drift
    blocks[..., 2] = 0.025
    yaw = rng.uniform(-0.7, 0.7, len(BLOCK_ORDER))
    blocks[..., 3], blocks[..., 6] = np.cos(yaw / 2), np.sin(yaw / 2)
    return dataclasses.replace(episode, blocks=blocks)


def test_hl_gauss_rows_are_distributions_peaked_on_their_bin():
    soft = hl_gauss_targets(0.02)
    assert soft.shape == (NUM_BINS, NUM_BINS)
    torch.testing.assert_close(soft.sum(1), torch.ones(NUM_BINS))
    inner = torch.arange(40, NUM_BINS - 40)        # near the ends the end bin collects the tail past +-1
    assert (soft[inner].argmax(1) == inner).all()
    mid = soft[512]
    assert mid[512 - 5] == pytest.approx(mid[512 + 5].item(), rel=1e-3)          # symmetric about its centre
    width = (mid > mid.max() * np.exp(-0.5)).sum().item()                         # +-1 sigma = +-10.24 bins
    assert 19 <= width <= 23
    assert soft[0, 0] > 0.5 * soft[0].sum()    # the mass past -1 stays on the end bin (saturated actions)


def test_action_head_loss_is_cross_entropy_over_the_bins_only():
    torch.manual_seed(0)
    model = Gato(MICRO).eval()
    ds = EpisodeDataset([synthetic_episode(s, steps=12) for s in range(2)], DatasetConfig(context=100))
    batch = collate([ds[i] for i in range(3)])
    loss = BehaviourCloningLoss(model, action_head=True)(**batch)
    logits, _ = model(batch['tokens'], batch['local_pos'], batch['patches'], batch['patch_rows'],
                      batch['patch_cols'], rows=slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS))
    targets = batch['loss_mask'][:, 1:] & (batch['tokens'][:, 1:] >= 0)
    bins = batch['tokens'][:, 1:][targets] - CONTINUOUS_OFFSET
    expected = torch.nn.functional.cross_entropy(logits[:, :-1][targets], bins)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() < 7.0 < BehaviourCloningLoss(model, action_head=False)(**batch).item()   # ln 1024 vs ln 33025
    with pytest.raises(ValueError, match='label_sigma needs action_head'):
        BehaviourCloningLoss(model, action_head=False, label_sigma=0.02)


def test_aux_targets_follow_the_blocks_one_row_per_own_timestep():
    episode = with_blocks(synthetic_episode(1, steps=12))
    tool_yaw = EpisodeTokens(episode).tool_yaw
    aux = aux_targets(episode.blocks, 0.0, tool_yaw)
    assert aux.shape == (12, AUX_DIM) and np.abs(aux).max() <= 1.5
    # The last two values per block: the quarter-turn-periodic yaw still to turn, block minus tool.
    qw, qz = episode.blocks[..., 3], episode.blocks[..., 6]
    turn = 2 * np.arctan2(qz, qw) - tool_yaw[:, None]
    per_block = aux.reshape(12, -1, 7)
    np.testing.assert_allclose(per_block[..., 5], np.sin(4 * turn), atol=1e-6)
    np.testing.assert_allclose(per_block[..., 6], np.cos(4 * turn), atol=1e-6)
    ds = EpisodeDataset([episode], DatasetConfig(context=60, prompt_prob=0))   # 3 timesteps of 20 tokens
    sample = ds[4]
    np.testing.assert_array_equal(sample.aux, aux[4:7])
    batch = collate([ds[0], ds[4]])
    assert batch['aux'].shape == (6, AUX_DIM)
    assert 'aux' not in collate([EpisodeDataset([synthetic_episode(2)], DatasetConfig(context=60))[0]])


def test_training_with_aux_and_hl_gauss_learns_and_resumes_its_aux_head(tmp_path):
    episodes = [with_blocks(synthetic_episode(s, steps=12), s) for s in range(4)]
    ds = EpisodeDataset(episodes, DatasetConfig(context=100, prompt_prob=0))
    cfg = TrainConfig(steps=30, batch_size=4, lr=3e-3, warmup_steps=3, checkpoint_every=15, log_every=5,
                      label_sigma=0.02, aux_weight=1.0)
    torch.manual_seed(0)
    losses = train(Gato(MICRO), ds, cfg, tmp_path, {'model': {}, 'tokenizer': {}, 'robot': {'joint_names': ['j']},
                                                   'stats': {}}, progress=False)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    state = torch.load(tmp_path / 'step-0000030' / TRAINING_STATE, weights_only=True)
    assert state['heads']['aux_head']['weight'].shape == (AUX_DIM, MICRO.d_model)
    more = train(Gato(MICRO), ds, dataclasses.replace(cfg, steps=32), tmp_path,
                 {'model': {}, 'tokenizer': {}, 'robot': {'joint_names': ['j']}, 'stats': {}}, resume=True,
                 progress=False)
    assert len(more) == 2
    with pytest.raises(ValueError, match='no auxiliary targets'):
        train(Gato(MICRO), EpisodeDataset([synthetic_episode(s) for s in range(4)], DatasetConfig(context=100)),
              dataclasses.replace(cfg, steps=1), tmp_path / 'noaux',
              {'model': {}, 'tokenizer': {}, 'robot': {'joint_names': ['j']}, 'stats': {}}, progress=False)


def test_mean_decoding_takes_the_bin_of_the_expected_value():
    torch.manual_seed(0)
    engine = GatoEngine(Gato(MICRO), EngineConfig(decoding='mean'))
    logits = torch.full((1, NUM_BINS), -1e9)
    logits[0, 100] = logits[0, 900] = 0.0            # two equal modes: argmax picks one, the mean sits between
    assert int(engine._pick(logits)) in (499, 500)
    argmax = GatoEngine(Gato(MICRO), EngineConfig(decoding='argmax'))
    assert int(argmax._pick(logits)) == 100
    with pytest.raises(ValueError, match="decoding must be 'argmax' or 'mean'"):
        EngineConfig(decoding='median')


def test_policy_spec_validates_and_names_contradictions():
    spec = PolicySpec(image_size=64, control_hz=10.0, context=51, decoding='mean', robots={'ur5e': ['a', 'b']})
    assert PolicySpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(PolicySpecError, match='image_size=50'):
        PolicySpec(image_size=50)
    with pytest.raises(PolicySpecError, match=r"unknown field\(s\) \['rate'\]"):
        PolicySpec.from_dict({**spec.to_dict(), 'rate': 5})
    with pytest.raises(PolicySpecError,
                       match='parameter rate: control_hz is 20.0 but the checkpoint was trained with control_hz 10.0'):
        spec.check_setting('control_hz', 20.0, 'policy_node, parameter rate')
    spec.check_setting('cameras', ['front_left', 'front_right'], 'x')
    legacy = PolicySpec.from_checkpoint_config({'data': {'cameras': ['a'], 'image_size': 32, 'control_hz': 5.0,
                                                         'dataset': {'context': 256, 'prompt_prob': 0.25,
                                                                     'prompt_fraction': 0.5}},
                                                'robot': {'profiles': {'ur5e': ['j1']}}})
    assert (legacy.cameras, legacy.image_size, legacy.context, legacy.prompt_fraction) == (('a',), 32, 256, 0.5)
    assert legacy.robots == {'ur5e': ('j1',)} and legacy.decoding == 'argmax'


def test_policy_node_refuses_a_rate_the_checkpoint_was_not_trained_at(tmp_path):
    from gato_ros.core.checkpoint import save_checkpoint
    from gato_ros.core.robots import load_profile
    from gato_ros.core.tokenizer import tokenizer_config
    from gato_ros.ros.nodes.policy_node import StartupError, load_policy
    from gato_ros.ros.params import PolicyNodeConfig

    profile = load_profile('ur5e')
    model = Gato(MICRO)
    spec = PolicySpec(cameras=PolicyNodeConfig().cameras, context=100, robots={'ur5e': profile.joint_names})
    save_checkpoint(tmp_path, model.state_dict(), {'policy': spec.to_dict(), 'model': MICRO.to_dict(),
                                                   'tokenizer': tokenizer_config(), 'stats': {},
                                                   'robot': {'joint_names': list(profile.joint_names)}})
    assert load_policy(PolicyNodeConfig(checkpoint=str(tmp_path)), profile).spec == spec
    with pytest.raises(StartupError, match='parameter rate: control_hz is 20.0 but the checkpoint was trained '
                                           'with control_hz 10.0'):
        load_policy(PolicyNodeConfig(checkpoint=str(tmp_path), rate=20.0, deadline=0.04), profile)
    with pytest.raises(StartupError, match='image_size is 128'):
        load_policy(PolicyNodeConfig(checkpoint=str(tmp_path), image_size=128), profile)


def test_block_poses_round_trip_through_the_episode_file(tmp_path):
    episode = with_blocks(synthetic_episode(3, steps=5))
    info = episode.info
    path = tmp_path / 'ep'
    with EpisodeWriter(path, info.robot, info.task, info.seed, info.control_hz, info.cameras, info.joint_names,
                       info.finger_joint_names, driver='policy') as writer:
        for t in range(len(episode)):
            blocks = {c: (episode.blocks[t, i, :3], episode.blocks[t, i, 3:]) for i, c in enumerate(BLOCK_ORDER)}
            writer.add(episode.time[t], np.r_[episode.q[t], episode.finger_q[t]], np.r_[episode.qd[t], 0.0, 0.0],
                       {c: episode.images[c][t] for c in info.cameras}, episode.actions[t], blocks)
        writer.close(success=False)
    back = read_episode(path)
    np.testing.assert_allclose(back.blocks, episode.blocks)
    assert back.info.driver == 'policy'
    assert len(load_episodes(tmp_path, only_successful=True)) == 1   # DAgger rollouts count whatever happened


def test_expert_labelled_actor_drives_with_the_policy_and_labels_with_the_expert():
    from gato_ros.core.data.record import ExpertLabelled

    class Expert:
        def reset(self): pass
        def act(self, obs): return np.full(5, 0.5)

    class Driver:
        def act(self, obs): return np.full(5, -0.25)

    actor = ExpertLabelled(Driver(), Expert(), beta=0.0)
    np.testing.assert_array_equal(actor.act(None), np.full(5, -0.25))
    np.testing.assert_array_equal(actor.label, np.full(5, 0.5))
    always_expert = ExpertLabelled(Driver(), Expert(), beta=1.0)
    np.testing.assert_array_equal(always_expert.act(None), np.full(5, 0.5))
    with pytest.raises(ValueError, match='beta must be in'):
        ExpertLabelled(Driver(), Expert(), beta=1.5)


def test_diagnosis_reports_model_and_baselines_per_dimension():
    episodes = [synthetic_episode(s, steps=8) for s in range(2)]
    torch.manual_seed(0)
    report = diagnose(Gato(MICRO), episodes, history=2)
    assert report['timesteps'] == 14 and report['history'] == 2
    zero = np.mean([np.abs(e.actions[1:]).mean() for e in episodes])
    assert report['mae']['predict_zero']['mean'] == pytest.approx(zero, abs=1e-3)
    assert set(report['mae']) == {'model_argmax', 'model_mean', 'copy_previous', 'predict_zero',
                                  'model_free_running', 'model_mean_past_actions_blanked'}
    assert set(report['mae']['model_mean']) == {'mean', 'vx', 'vy', 'vz', 'yaw_rate', 'grip'}
    assert list(report['mae_by_phase']) == ['unknown']   # no block poses: the expert cannot be replayed
    grip = report['grip_decision']
    assert grip['timesteps'] == 14 and 0 <= grip['agreement'] <= 1 and 0 <= grip['uncertain'] <= 1
    assert list(grip['by_phase']) == ['unknown']


@pytest.mark.parametrize('action_inputs', ['value', 'slot'])
def test_free_running_diagnosis_decodes_as_the_engine_does(action_inputs):
    """model_free_running feeds each decoded dimension back as the closed-loop engine does: it is the engine's
    action; under 'slot' inputs, which never read a decoded value, it equals the teacher-forced expected value."""
    from gato_ros.core.diagnosis import predict
    from gato_ros.core.tokenizer import tokenize_observation
    torch.manual_seed(0)
    model = Gato(dataclasses.replace(MICRO, action_inputs=action_inputs)).eval()
    with torch.no_grad():   # sharp logits, so a value read back changes the next dimension
        for name, p in model.named_parameters():
            if p.ndim > 1 and 'patch_embed' not in name:
                p.mul_(10)
    tokens = EpisodeTokens(synthetic_episode(3, steps=4))
    windows = [tokens.timestep(t) for t in range(4)]
    _, teacher = predict(model, windows, 5)
    _, free = predict(model, windows, 5, feedback='mean')
    engine = GatoEngine(model, EngineConfig(action_dim=5, max_context=len(windows[0]), decoding='mean'))
    engine_actions = [engine.step(tokenize_observation(tokens.observation(t))).action for t in range(4)]
    np.testing.assert_allclose(free, engine_actions, atol=2 / 1024)   # the engine returns the value's bin centre
    if action_inputs == 'slot':
        np.testing.assert_allclose(free, teacher, atol=1e-5)
    else:
        assert np.abs(free - teacher).max() > 0.01


def test_grip_decision_counts_the_side_of_zero_and_the_uncertain_margin():
    from gato_ros.core.diagnosis import grip_decision
    report = grip_decision(np.array([0.9, 0.2, -0.3, -0.8]), np.array([1.0, 1.0, 1.0, -1.0]))
    assert report == {'timesteps': 4, 'agreement': 0.75, 'uncertain': 0.5}


def test_relabelling_a_recorded_expert_episode_gives_back_its_actions(tmp_path):
    """The recorded states (FK of the joints, finger closure, block poses) carry everything the expert reads:
    its labels on an episode it drove are the actions it took, phase by phase."""
    from gato_ros.cli import main as cli_main
    from gato_ros.core.data.relabel import expert_labels, relabelled

    assert cli_main(['record', '--robot', 'ur5e', '--out', str(tmp_path), '--image-size', '32', '--episodes', '1',
                     '--seed', '4']) == 0
    [episode] = load_episodes(tmp_path)
    assert episode.info.success
    labels, phases = expert_labels(episode)
    close = np.abs(labels - episode.actions).max(axis=1) < 0.01   # the recorded poses round by < 1 mm
    assert close.mean() >= 0.95, np.flatnonzero(~close)
    visited = list(dict.fromkeys(p.value for p in phases))
    assert visited[:7] == ['approach', 'descend', 'close', 'lift', 'move', 'lower', 'open']
    np.testing.assert_array_equal(relabelled(episode).actions, labels)
    with pytest.raises(ValueError, match='no block poses'):
        relabelled(dataclasses.replace(episode, blocks=None))


def test_wrist_patch_targets_follow_the_camera_on_the_tool(tmp_path):
    """The dense per-patch targets place the blocks through each frame's own wrist-camera pose: while the
    fingers close on the red block, the wrist patch said to hold red shows red pixels."""
    from gato_ros.cli import main as cli_main
    from gato_ros.core.data.dataset import patch_targets
    from gato_ros.core.data.relabel import expert_labels

    assert cli_main(['record', '--out', str(tmp_path), '--image-size', '64', '--episodes', '1', '--seed', '2',
                     '--cameras', 'front_left', 'wrist']) == 0
    [episode] = load_episodes(tmp_path)
    targets = patch_targets(episode.blocks, episode.q, episode.info, 64)   # (T, 2 cameras x 16 patches, 9)
    _, phases = expert_labels(episode)
    red = BLOCK_ORDER.index('red')
    closing = [t for t, p in enumerate(phases) if p.value == 'close']
    assert closing
    for t in closing:
        wrist = targets[t, 16:, red]                        # 'image_wrist' sorts after 'image_front_left'
        assert wrist.sum() == 1, t
        row, col = divmod(int(wrist.argmax()), 4)
        patch = episode.images['wrist'][t, 16 * row:16 * row + 16, 16 * col:16 * col + 16].astype(int)
        assert ((patch[..., 0] > 150) & (patch[..., 1] < 90)).mean() > 0.5, (t, row, col)
