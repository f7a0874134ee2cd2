"""Checkpoints: safetensors + config.json round trip and strict, named errors."""

import json

import pytest
import torch

from gato_ros.core.checkpoint import CheckpointError, check_state_dict, load_checkpoint, save_checkpoint

CONFIG = {'model': {'preset': 'tiny'}, 'tokenizer': {'num_bins': 1024}, 'robot': {'joint_names': ['j0', 'j1']},
          'stats': {'proprio_mean': [0.0, 0.1]}}


def state_dict():
    embedding = torch.arange(12.0).reshape(4, 3)
    return {'embed.weight': embedding, 'head.weight': embedding,   # tied weights share memory
            'blocks.0.attn.w': torch.ones(2, 5).t(), 'step': torch.tensor(7)}


@pytest.fixture
def checkpoint(tmp_path):
    return save_checkpoint(tmp_path / 'ckpt', state_dict(), CONFIG)


def test_round_trip(checkpoint):
    loaded, config = load_checkpoint(checkpoint, expected_keys=state_dict().keys())
    assert config == {'format_version': 1, **CONFIG}
    for name, tensor in state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    check_state_dict(loaded, state_dict())
    assert sorted(p.name for p in checkpoint.iterdir()) == ['config.json', 'model.safetensors']


def test_truncated_weights(checkpoint):
    weights = checkpoint / 'model.safetensors'
    weights.write_bytes(weights.read_bytes()[:-9])
    with pytest.raises(CheckpointError, match=r'model\.safetensors: truncated or corrupt'):
        load_checkpoint(checkpoint)


def test_bad_json(checkpoint):
    (checkpoint / 'config.json').write_text('{"model": {}, \n "robot": ')
    with pytest.raises(CheckpointError, match=r'config\.json: invalid JSON at line 2'):
        load_checkpoint(checkpoint)


def test_missing_config_section_and_joint_spec(checkpoint):
    config = json.loads((checkpoint / 'config.json').read_text())
    del config['stats']
    (checkpoint / 'config.json').write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"config\.json: missing config section 'stats'"):
        load_checkpoint(checkpoint)
    with pytest.raises(CheckpointError, match='robot.joint_names'):
        save_checkpoint(checkpoint, state_dict(), {**CONFIG, 'robot': {'joint_names': []}})


def test_missing_and_unexpected_keys(checkpoint):
    with pytest.raises(CheckpointError, match=r"model\.safetensors: missing tensor\(s\) 'blocks\.1\.attn\.w'"):
        load_checkpoint(checkpoint, expected_keys=[*state_dict(), 'blocks.1.attn.w'])
    with pytest.raises(CheckpointError, match=r"unexpected tensor\(s\) 'step'"):
        check_state_dict(state_dict(), {k: v for k, v in state_dict().items() if k != 'step'})


def test_shape_mismatch_names_the_tensor_and_both_shapes(checkpoint):
    loaded, _ = load_checkpoint(checkpoint)
    model = {**state_dict(), 'blocks.0.attn.w': torch.zeros(512, 1536)}
    with pytest.raises(CheckpointError) as info:
        check_state_dict(loaded, model)
    assert str(info.value) == ("model.safetensors: tensor 'blocks.0.attn.w' has shape (5, 2), "
                               "model expects (512, 1536)")


def test_missing_directory_files_and_unsaveable_config(tmp_path, checkpoint):
    with pytest.raises(CheckpointError, match='checkpoint directory does not exist'):
        load_checkpoint(tmp_path / 'nowhere')
    (checkpoint / 'model.safetensors').unlink()
    with pytest.raises(CheckpointError, match=r'model\.safetensors: file is missing'):
        load_checkpoint(checkpoint)
    with pytest.raises(CheckpointError, match='not plain JSON'):
        save_checkpoint(tmp_path / 'nan', state_dict(), {**CONFIG, 'stats': {'mean': float('nan')}})


def test_export_casts_weights_and_keeps_the_config(tmp_path):
    import torch
    from gato_ros.core.checkpoint import export_checkpoint, load_checkpoint, save_checkpoint
    weights = {'w': torch.randn(4, 3), 'steps': torch.tensor([7])}
    config = {'model': {'n': 1}, 'tokenizer': {}, 'robot': {'joint_names': ['a']}, 'stats': {}}
    save_checkpoint(tmp_path / 'src', weights, config)
    export_checkpoint(tmp_path / 'src', tmp_path / 'dst', torch.bfloat16, {'demo': {'prompt_task': ['red', 'blue']}})
    state, loaded = load_checkpoint(tmp_path / 'dst')
    assert state['w'].dtype == torch.bfloat16 and state['steps'].dtype == torch.int64
    torch.testing.assert_close(state['w'].float(), weights['w'], atol=1e-2, rtol=1e-2)
    assert loaded['model'] == {'n': 1} and loaded['weights_dtype'] == 'bfloat16'
    assert loaded['demo'] == {'prompt_task': ['red', 'blue']}
