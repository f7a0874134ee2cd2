"""Gato sequence layout: field order, separator, local positions, loss mask, concat/select (docs/design.md §3)."""

import dataclasses
import json

import numpy as np
import pytest

from gato_ros.core.tokenizer import (LOCAL_POS_SIZE, NO_POS, PATCH_PLACEHOLDER, SEPARATOR_ID, TokenSequence,
                                     check_tokenizer_config, detokenize_action, image_to_patches, separator_and_actions,
                                     tokenize_action, tokenize_continuous, tokenize_observation,
                                     tokenize_text, tokenize_timestep, tokenizer_config)


def observation(shade: int = 0) -> dict:
    return {'proprio': np.array([0.0, 1.5]), 'image_front': np.full((32, 16, 3), shade, np.uint8),
            'instruction': 'stack the red block on the blue block', 'gripper_closed': np.array([1])}


def assert_same(a: TokenSequence, b: TokenSequence):
    for field in dataclasses.fields(TokenSequence):
        np.testing.assert_array_equal(getattr(a, field.name), getattr(b, field.name), err_msg=field.name)


def test_fields_in_lexicographic_key_order_each_with_its_tokenizer():
    obs = observation(shade=255)
    seq = tokenize_observation(obs)
    text = tokenize_text(obs['instruction'])
    # gripper_closed (discrete) < image_front (2 patches) < instruction (text) < proprio (mu-law continuous)
    expected = np.concatenate([[1], [PATCH_PLACEHOLDER] * 2, text, tokenize_continuous(obs['proprio'])])
    assert seq.tokens.tolist() == expected.tolist()
    np.testing.assert_array_equal(seq.patches, image_to_patches(obs['image_front'])[0])
    assert seq.patch_rows.tolist() == [[0, 64], [64, 128]] and seq.patch_cols.tolist() == [[0, 128]] * 2
    assert seq.local_pos.tolist() == list(range(len(expected)))
    assert seq.loss_mask.tolist() == [False] * 3 + [True] * len(text) + [False] * 2
    assert not seq.is_action.any() and seq.num_timesteps == 1


def test_timestep_layout_separator_actions_and_loss_mask():
    seq = tokenize_timestep(observation(), [0.0, -1.0, 1.0])
    n_obs = len(tokenize_observation(observation()))
    assert len(seq) == n_obs + 4
    assert seq.tokens[n_obs] == SEPARATOR_ID
    assert seq.tokens[n_obs + 1:].tolist() == [32512, 32000, 33023]   # binned without mu-law
    assert seq.local_pos[n_obs:].tolist() == [NO_POS] * 4
    assert seq.is_action.tolist() == [False] * (n_obs + 1) + [True] * 3
    text = tokenize_observation(observation()).loss_mask
    assert seq.loss_mask.tolist() == text.tolist() + [False, True, True, True]   # '|' is never a target
    assert seq.timestep.tolist() == [0] * len(seq)


def test_actions_round_trip_and_out_of_range_actions_raise():
    a = np.array([0.3, -0.99, 0.0, 1.0, -1.0])
    assert np.abs(detokenize_action(tokenize_action(a)) - a).max() <= 1 / 1024
    with pytest.raises(ValueError, match=r'element 1 is 1.5, outside \[-1, 1\]'):
        tokenize_action([0.0, 1.5])
    with pytest.raises(ValueError, match='non-finite'):
        tokenize_timestep(observation(), [np.nan])


@pytest.mark.parametrize('value, error, match', [
    ({'x': 1}, TypeError, "field 'bad'.*dict"),
    (None, TypeError, "field 'bad'"),
    (np.array([1 + 2j]), TypeError, "field 'bad'.*complex"),
    (np.array([0.0, np.inf]), ValueError, r"field 'bad'.*element \(1,\)"),
    (np.array([2000]), ValueError, "field 'bad'.*2000"),
    (np.zeros((20, 16, 3), np.uint8), ValueError, "field 'bad'.*multiple of 16"),
])
def test_bad_fields_raise_naming_the_key(value, error, match):
    with pytest.raises(error, match=match):
        tokenize_observation({'a_ok': np.zeros(2), 'bad': value})


def test_too_many_observation_tokens_and_empty_observations_raise():
    tokenize_observation({'x': np.zeros(LOCAL_POS_SIZE)})
    with pytest.raises(ValueError, match=f'{LOCAL_POS_SIZE + 1} observation tokens exceed'):
        tokenize_observation({'x': np.zeros(LOCAL_POS_SIZE + 1)})
    with pytest.raises(ValueError, match='no tokens'):
        tokenize_observation({})


def test_concat_renumbers_timesteps_and_select_recovers_them():
    steps = [tokenize_timestep(observation(shade=10 * t), [t / 10, -t / 10]) for t in range(4)]
    seq = TokenSequence.concat(steps)
    assert seq.num_timesteps == 4 and len(seq) == sum(len(s) for s in steps)
    assert seq.num_patches == 8
    bounds = seq.timestep_bounds()
    assert bounds.tolist() == np.cumsum([0] + [len(s) for s in steps]).tolist()
    for t in range(4):
        assert_same(seq.select_timesteps(t, t + 1), steps[t])   # patches travel with their timestep
    assert_same(seq.select_timesteps(-2), TokenSequence.concat(steps[2:]))
    assert_same(TokenSequence.concat([seq.select_timesteps(0, 1), seq.select_timesteps(1)]), seq)
    assert len(seq.select_timesteps(4)) == 0 and TokenSequence.concat([]).num_timesteps == 0


def test_engine_path_observation_then_separator_and_actions_is_one_timestep():
    history = tokenize_timestep(observation(), [0.5, 0.5])
    obs = tokenize_observation(observation(shade=7))
    action_ids = tokenize_action([0.2, -0.2])
    prefill = TokenSequence.concat([history, obs, separator_and_actions()])   # what precedes the first decode
    assert prefill.num_timesteps == 2 and prefill.tokens[-1] == SEPARATOR_ID
    full = TokenSequence.concat([history, obs, separator_and_actions(action_ids)])
    assert full.num_timesteps == 2
    assert_same(full.select_timesteps(1), tokenize_timestep(observation(shade=7), [0.2, -0.2]))
    with pytest.raises(ValueError, match='not token ids'):
        separator_and_actions([SEPARATOR_ID])


@pytest.mark.parametrize('change, error, match', [
    (dict(tokens=np.zeros(3, np.int32)), TypeError, 'tokens: expected dtype int64, got int32'),
    (dict(loss_mask=np.zeros(2, bool)), ValueError, r'loss_mask: expected shape \(3,\)'),
    (dict(patches=np.zeros((1, 3, 16, 16), np.float32)), ValueError, r'patches: expected shape \(0, 3, 16, 16\)'),
    (dict(tokens=np.array([1, 2, 40000])), ValueError, 'tokens: element 2 is 40000'),
    (dict(timestep=np.array([0, 2, 2])), ValueError, 'timestep'),
    (dict(local_pos=np.array([0, -1, 1])), ValueError, 'local_pos'),
    (dict(is_action=np.array([False, True, False]), local_pos=np.array([0, -1, 1])), ValueError, 'order'),
])
def test_token_sequence_validates_its_arrays(change, error, match):
    valid = dict(tokens=np.array([1, 2, 3]), patches=np.zeros((0, 3, 16, 16), np.float32),
                 patch_rows=np.zeros((0, 2), np.int64), patch_cols=np.zeros((0, 2), np.int64),
                 local_pos=np.arange(3), loss_mask=np.zeros(3, bool), is_action=np.zeros(3, bool),
                 timestep=np.zeros(3, np.int64))
    TokenSequence(**valid)
    with pytest.raises(error, match=match):
        TokenSequence(**{**valid, **change})


def test_tokenizer_config_is_json_and_mismatches_are_named():
    config = json.loads(json.dumps(tokenizer_config()))
    check_tokenizer_config(config)
    with pytest.raises(ValueError, match='num_bins: checkpoint has 256, this code uses 1024'):
        check_tokenizer_config({**config, 'num_bins': 256})
