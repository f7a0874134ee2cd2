"""Gato model: config validation, the docs/design.md §3 presets, embeddings, tied head, causality, loss."""

import dataclasses

import numpy as np
import pytest
import torch

from gato_ros.commands import info
from gato_ros.core.model import PRESETS, Gato, GatoConfig, action_slots, attention_mask, sequence_tensors
from gato_ros.core.tokenizer import (CONTINUOUS_OFFSET, SEPARATOR_ID, TokenSequence, tokenize_observation,
                                     tokenize_timestep)

MICRO = GatoConfig(n_layer=2, d_model=64, n_head=2, head_dim=32, d_ff=128, patch_channels=32)


def _obs(rng, size=32):
    return {'image_a': rng.integers(0, 256, (size, size, 3), dtype=np.uint8),
            'proprio': rng.normal(size=5).astype(np.float32)}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return Gato(MICRO).eval()


def test_presets_match_design_table():
    shapes = {name: (c.n_layer, c.d_model, c.n_head, c.head_dim, c.d_ff) for name, c in PRESETS.items()}
    assert shapes['gato-1.18b'] == (24, 2048, 16, 128, 8192)
    assert shapes['gato-364m'] == (12, 1536, 12, 128, 6144)
    assert shapes['gato-79m'] == (8, 768, 24, 32, 3072)
    assert shapes['small'][:2] == (6, 512) and shapes['tiny'][:2] == (4, 256)
    for c in PRESETS.values():
        assert (c.vocab_size, c.context, c.pos_buckets, c.local_positions) == (33025, 1024, 128, 512)


@pytest.mark.parametrize('field, value, match', [
    ('n_layer', 0, 'n_layer'), ('d_model', -1, 'd_model'), ('patch_channels', 48, 'patch_channels'),
    ('dropout', 1.0, 'dropout'), ('n_head', 2.5, 'n_head'), ('context', 1, 'context'),
    ('attention_window', -1, 'attention_window')])
def test_config_errors_name_the_field(field, value, match):
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(MICRO, **{field: value})


def test_attention_window_mask_and_forward():
    assert attention_mask(5, 0) is None
    expected = [[1, 0, 0, 0, 0],
                [1, 1, 0, 0, 0],
                [1, 1, 1, 0, 0],
                [1, 0, 1, 1, 0],    # window 2: itself and one before, plus the first token (a sink)
                [1, 0, 0, 1, 1]]
    assert attention_mask(5, 2, sinks=1).int().tolist() == expected
    rng = np.random.default_rng(1)
    seq = sequence_tensors(TokenSequence.concat([tokenize_timestep(_obs(rng), np.zeros(3)) for _ in range(3)]))
    torch.manual_seed(0)
    full = Gato(MICRO).eval()
    wide, narrow = (Gato(dataclasses.replace(MICRO, attention_window=w)).eval() for w in (1024, 4))
    for m in (wide, narrow):
        m.load_state_dict(full.state_dict())
    with torch.no_grad():
        reference = full(**seq)[0]
        torch.testing.assert_close(wide(**seq)[0], reference)              # a window past the sequence: no change
        limited = narrow(**seq)[0]
    assert torch.allclose(limited[:, :4], reference[:, :4], atol=1e-5)      # the first 4 tokens see everything
    assert not torch.allclose(limited[:, 4:], reference[:, 4:], atol=1e-3)


def test_config_round_trip_and_unknown_field():
    assert GatoConfig.from_dict(MICRO.to_dict()) == MICRO
    with pytest.raises(ValueError, match='n_layers'):
        GatoConfig.from_dict({**MICRO.to_dict(), 'n_layers': 3})


def test_parameter_counts_on_meta_device(capsys):
    cfg = PRESETS['gato-1.18b']
    with torch.device('meta'):
        counts = Gato(cfg).num_params()
    d, L = cfg.d_model, cfg.n_layer
    per_block = 4 * d + 3 * d * cfg.n_head * cfg.head_dim + cfg.n_head * cfg.head_dim * d + 3 * d * cfg.d_ff
    assert counts['transformer'] == L * per_block + 2 * d
    assert counts['embedding_table'] == 33025 * d
    assert counts['total'] == sum(v for k, v in counts.items() if k != 'total')
    assert info.run(type('Args', (), {'preset': 'gato-1.18b'})()) == 0
    out = capsys.readouterr().out
    assert '24 layers' in out and f"{counts['total']:,d}" in out


def test_head_is_tied_to_the_embedding(model):
    assert not any('head' in name for name in model.state_dict())
    h = torch.randn(1, 3, MICRO.d_model)
    rows = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + 1024)
    full = model.head(h)
    torch.testing.assert_close(model.head(h, rows), full[..., rows])
    torch.testing.assert_close(full, model.ln_f(h) @ model.wte.weight.T)


def test_local_positions_only_on_observation_tokens(model):
    ts = tokenize_timestep({'p': np.zeros(3, np.float32)}, np.zeros(2))   # 3 obs, '|', 2 actions
    x = model.embed(**sequence_tensors(ts))[0]
    ids = torch.as_tensor(ts.tokens)
    torch.testing.assert_close(x[3:], model.wte(ids[3:]))                 # '|' and actions: table row only
    expected_obs = model.wte(ids[:3]) + model.local_emb(torch.arange(3))
    torch.testing.assert_close(x[:3], expected_obs)


def test_patch_position_buckets_sampled_in_training_mean_at_eval(model):
    seq = tokenize_observation({'image_a': np.full((64, 64, 3), 128, np.uint8)})
    inputs = sequence_tensors(seq)
    rows = inputs['patch_rows']
    assert torch.equal(model._bucket(rows), (rows[:, 0] + rows[:, 1]) // 2)
    torch.testing.assert_close(model.embed(**inputs), model.embed(**inputs))   # eval: deterministic
    model.train()
    samples = torch.stack([model._bucket(rows) for _ in range(200)])
    assert ((samples >= rows[:, 0]) & (samples < rows[:, 1])).all()
    assert len(samples[:, 0].unique()) > 5      # really sampled across the 32-bucket interval


def test_causal_and_patches_matter(model):
    rng = np.random.default_rng(0)
    seq = TokenSequence.concat([tokenize_timestep(_obs(rng), rng.uniform(-1, 1, 3)) for _ in range(2)])
    inputs = sequence_tensors(seq)
    logits, _ = model(**inputs)
    changed = dict(inputs, patches=inputs['patches'].clone())
    last_patch_token = int(np.flatnonzero(seq.tokens == -1)[-1])
    changed['patches'][-1] += 1.0                                        # the last image patch
    logits2, _ = model(**changed)
    torch.testing.assert_close(logits[:, :last_patch_token], logits2[:, :last_patch_token])  # causal
    assert not torch.allclose(logits[:, last_patch_token:], logits2[:, last_patch_token:])


def test_loss_on_text_and_action_targets_trains_all_parts(model):
    rng = np.random.default_rng(1)
    seq = TokenSequence.concat([tokenize_timestep(_obs(rng), rng.uniform(-1, 1, 3)) for _ in range(2)])
    model.train()
    _, loss = model(**sequence_tensors(seq), loss_mask=torch.as_tensor(seq.loss_mask)[None])
    assert loss.ndim == 0 and abs(loss.item() - np.log(33025)) < 2.0    # near uniform at init
    loss.backward()
    for part in (model.wte, model.patch_embed.conv1, model.row_emb, model.local_emb, model.blocks[0].attn.qkv):
        assert part.weight.grad is not None and part.weight.grad.abs().sum() > 0


def test_too_long_sequence_is_refused():
    model = Gato(dataclasses.replace(MICRO, context=8))
    with pytest.raises(ValueError, match='exceeds context 8'):
        model(torch.zeros(1, 9, dtype=torch.long), torch.zeros(1, 9, dtype=torch.long))


def test_slot_action_inputs_embed_the_index_never_the_value():
    """'slot' inputs: an action token feeds forward its index in the action vector, so no logit depends on a
    decoded action's value (closed loop cannot read its own decoded dimensions back) but each on its index."""
    torch.manual_seed(0)
    model = Gato(dataclasses.replace(MICRO, action_inputs='slot')).eval()
    rng = np.random.default_rng(0)
    seq = TokenSequence.concat([tokenize_timestep(_obs(rng), rng.uniform(-1, 1, 3)) for _ in range(2)])
    inputs = sequence_tensors(seq)
    slots = action_slots(inputs['tokens'], inputs['local_pos'])[0]
    is_action = (seq.local_pos < 0) & (seq.tokens != SEPARATOR_ID)
    assert slots[torch.as_tensor(is_action)].tolist() == [0, 1, 2, 0, 1, 2]
    x = model.embed(**inputs)[0]
    torch.testing.assert_close(x[torch.as_tensor(is_action)], model.action_emb(torch.tensor([0, 1, 2, 0, 1, 2])))
    other = dict(inputs, tokens=inputs['tokens'].clone())
    other['tokens'][0, torch.as_tensor(is_action)] = CONTINUOUS_OFFSET + 7    # every action value changed
    torch.testing.assert_close(model(**inputs)[0], model(**other)[0])
    value = Gato(MICRO).eval()
    assert not torch.allclose(value(**inputs)[0], value(**other)[0])          # 'value' inputs do read them
    with pytest.raises(ValueError, match='action_inputs'):
        GatoConfig(action_inputs='bins')
