"""The Gato model (Reed et al. 2022, "A Generalist Agent"), nanoGPT-style in one file.

Inputs are the arrays of a tokenizer TokenSequence (docs/design.md §3):
    tokens     int64 [B, T]   ids in [0, vocab_size); PATCH_PLACEHOLDER (-1) where an image patch sits
    local_pos  int64 [B, T]   0..n-1 for observation tokens of a timestep, -1 for '|' and actions
    patches    float [P, 3, 16, 16]  in the row-major order of the placeholders over (B, T)
    patch_rows int64 [P, 2]   quantised [lo, hi) row interval in 0..pos_buckets (same for patch_cols)

Embedding: one shared table for text/discrete/continuous/separator ids (tied to the output head);
patches go through one pre-activation ResNet-v2 block and a linear projection, plus learnable row
and column encodings; observation tokens add a local position encoding. There is NO global position
embedding (Gato has none): a token's keys and values depend only on its own content and on what it
attends to, never on its absolute position, so a KV cache never needs positions fixed up -- the engine's
sliding window and its ring buffer (config.attention_window) rely on this.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from gato_ros.core.fields import from_known_fields
from gato_ros.core.tokenizer.continuous import CONTINUOUS_OFFSET, SEPARATOR_ID

GROUPS = 32  # GroupNorm groups in the patch ResNet block (Gato)
ACTION_SLOTS = 32  # largest action vector whose tokens get an input embedding of their index ('slot' inputs)
ACTION_INPUTS = ('value', 'slot')


@dataclass(frozen=True)
class GatoConfig:
    """Shape of a Gato model. Every field is validated on construction."""

    n_layer: int = 4            # transformer blocks, >= 1
    d_model: int = 256          # residual stream width, >= 1
    n_head: int = 4             # attention heads, >= 1
    head_dim: int = 64          # width of one head (n_head * head_dim need not equal d_model), >= 1
    d_ff: int = 1024            # GEGLU hidden width (each of its two branches), >= 1
    vocab_size: int = 33025     # shared table: 32000 text + 1024 continuous bins + '|', >= 2
    context: int = 1024         # longest sequence the model is trained/run on (tokens), >= 2
    patch_size: int = 16        # image patch side (pixels), >= 2
    patch_channels: int = 64    # channels inside the patch ResNet block, a multiple of 32 (GroupNorm groups)
    pos_buckets: int = 128      # row/column position buckets for patches, >= 1
    local_positions: int = 512  # local observation position table size, >= 1
    dropout: float = 0.0        # dropout on attention/residual outputs while training, in [0, 1)
    attention_window: int = 0   # > 0: a token attends to itself and the window - 1 tokens before it (sliding
                                # window; the engine then keeps a constant-time ring-buffer cache); 0 = full causal
    action_inputs: str = 'value'  # what an action token feeds forward: 'value', its bin's embedding (Gato), or
                                  # 'slot', the embedding of its index in the action vector. Under 'value' the next
                                  # dimension is read off the previous ones: teacher-forced on recorded actions it
                                  # scored 0.035, decoding its own 0.236 (docs/learning.md); 'slot' never reads a
                                  # decoded value back, so closed loop decodes exactly what was trained

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == 'int' and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f'GatoConfig.{f.name} must be an int, got {value!r}')
        minimum = {'vocab_size': 2, 'context': 2, 'patch_size': 2}
        for name in ('n_layer', 'd_model', 'n_head', 'head_dim', 'd_ff', 'vocab_size', 'context',
                     'patch_size', 'patch_channels', 'pos_buckets', 'local_positions'):
            lo = minimum.get(name, 1)
            if getattr(self, name) < lo:
                raise ValueError(f'GatoConfig.{name} must be >= {lo}, got {getattr(self, name)}')
        if self.attention_window < 0:
            raise ValueError(f'GatoConfig.attention_window must be >= 0 (0 = full causal attention), '
                             f'got {self.attention_window}')
        if self.action_inputs not in ACTION_INPUTS:
            raise ValueError(f'GatoConfig.action_inputs must be one of {ACTION_INPUTS}, got {self.action_inputs!r}')
        if self.patch_channels % GROUPS:
            raise ValueError(f'GatoConfig.patch_channels must be a multiple of {GROUPS} '
                             f'(GroupNorm groups), got {self.patch_channels}')
        if self.patch_size % 2:
            raise ValueError(f'GatoConfig.patch_size must be even (stride-2 stem), got {self.patch_size}')
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f'GatoConfig.dropout must be in [0, 1), got {self.dropout}')

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> 'GatoConfig':
        return from_known_fields(cls, d)


# The three paper sizes exactly as docs/design.md §3 (Gato Table 6); 'small' and 'tiny' are ours, for CPU.
PRESETS = {
    'gato-1.18b': GatoConfig(n_layer=24, d_model=2048, n_head=16, head_dim=128, d_ff=8192),
    'gato-364m': GatoConfig(n_layer=12, d_model=1536, n_head=12, head_dim=128, d_ff=6144),
    'gato-79m': GatoConfig(n_layer=8, d_model=768, n_head=24, head_dim=32, d_ff=3072),
    'small': GatoConfig(n_layer=6, d_model=512, n_head=8, head_dim=64, d_ff=2048),
    'tiny': GatoConfig(n_layer=4, d_model=256, n_head=4, head_dim=64, d_ff=1024, patch_channels=32),
}


def attention_mask(n: int, window: int, sinks: int = 0, device=None) -> torch.Tensor | None:
    """The plain forward's [query, key] bool mask over n tokens: causal and, with window > 0, limited to the query
    itself, the window - 1 tokens before it and the first `sinks` tokens (a prompt kept in view). None for
    window 0: plain causal attention."""
    if not window:
        return None
    i = torch.arange(n, device=device)
    back = i[:, None] - i[None, :]                                                 # query - key
    return (back >= 0) & ((back < window) | (i[None, :] < sinks))


def preset(name: str) -> GatoConfig:
    if name not in PRESETS:
        raise ValueError(f'unknown model preset {name!r}; choose one of {sorted(PRESETS)}')
    return PRESETS[name]


class PatchEmbedding(nn.Module):
    """One vector per image patch: stride-2 stem conv (3 -> C channels, so GroupNorm(32) has channels to
    group), a single pre-activation ResNet-v2 block (GN, GELU, conv, GN, GELU, conv, + skip), then a
    final GN+GELU and a linear projection of the flattened features to d_model."""

    def __init__(self, cfg: GatoConfig):
        super().__init__()
        c, side = cfg.patch_channels, cfg.patch_size // 2
        self.stem = nn.Conv2d(3, c, kernel_size=4, stride=2, padding=1)           # (P,3,16,16) -> (P,C,8,8)
        self.norm1, self.conv1 = nn.GroupNorm(GROUPS, c), nn.Conv2d(c, c, 3, padding=1)
        self.norm2, self.conv2 = nn.GroupNorm(GROUPS, c), nn.Conv2d(c, c, 3, padding=1)
        self.norm_out = nn.GroupNorm(GROUPS, c)
        self.proj = nn.Linear(c * side * side, cfg.d_model)                        # (P, C*8*8) -> (P, d)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        x = self.stem(patches)
        h = self.conv1(F.gelu(self.norm1(x)))
        x = x + self.conv2(F.gelu(self.norm2(h)))
        return self.proj(F.gelu(self.norm_out(x)).flatten(1))


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GatoConfig):
        super().__init__()
        self.n_head, self.head_dim = cfg.n_head, cfg.head_dim
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.n_head * cfg.head_dim, bias=False)
        self.proj = nn.Linear(cfg.n_head * cfg.head_dim, cfg.d_model, bias=False)
        self.dropout = cfg.dropout

    def forward(self, x, kv_cache=None, input_pos=None, attn_mask=None):
        """x (B, T, d). Without a cache: plain causal attention over x. With a cache (batch 1):
        kv_cache = (keys, values), each (H, S, hd), receives this call's keys/values at slots input_pos (T,);
        the queries attend over the first W slots under attn_mask (T, W) -- W = S gives fixed shapes for
        torch.compile / CUDA graphs, W = the used length skips the empty slots in eager mode."""
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.n_head, self.head_dim).permute(2, 0, 3, 1, 4)  # 3x (B,H,T,hd)
        if kv_cache is None:
            drop = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=attn_mask is None,
                                               dropout_p=drop)
        else:
            k_cache, v_cache = kv_cache
            k_cache[:, input_pos] = k[0]   # index_put_ on a whole buffer: in place, also under torch.compile
            v_cache[:, input_pos] = v[0]
            width = attn_mask.shape[-1]
            y = F.scaled_dot_product_attention(q, k_cache[None, :, :width], v_cache[None, :, :width],
                                               attn_mask=attn_mask)
        return self.proj(y.transpose(1, 2).reshape(B, T, -1))                     # (B, T, d)


class GEGLU(nn.Module):
    def __init__(self, cfg: GatoConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 2 * cfg.d_ff, bias=False)
        self.proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x):
        gate, value = self.fc(x).chunk(2, dim=-1)                                  # 2x (B, T, ff)
        return self.proj(F.gelu(gate) * value)


class Block(nn.Module):
    """Pre-LayerNorm decoder block."""

    def __init__(self, cfg: GatoConfig):
        super().__init__()
        self.ln_1, self.attn = nn.LayerNorm(cfg.d_model), CausalSelfAttention(cfg)
        self.ln_2, self.mlp = nn.LayerNorm(cfg.d_model), GEGLU(cfg)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x, kv_cache=None, input_pos=None, attn_mask=None):
        x = x + self.drop(self.attn(self.ln_1(x), kv_cache, input_pos, attn_mask))
        return x + self.drop(self.mlp(self.ln_2(x)))


class Gato(nn.Module):
    def __init__(self, cfg: GatoConfig):
        super().__init__()
        self.config = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)   # shared table; also the output head (tied)
        self.patch_embed = PatchEmbedding(cfg)
        self.row_emb = nn.Embedding(cfg.pos_buckets, cfg.d_model)
        self.col_emb = nn.Embedding(cfg.pos_buckets, cfg.d_model)
        self.local_emb = nn.Embedding(cfg.local_positions, cfg.d_model)
        if cfg.action_inputs == 'slot':
            self.action_emb = nn.Embedding(ACTION_SLOTS, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.d_model)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale residual projections by depth
            if name.endswith('proj.weight') and 'patch_embed' not in name:
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if getattr(m, 'bias', None) is not None:
                nn.init.zeros_(m.bias)

    def _bucket(self, interval: torch.Tensor) -> torch.Tensor:
        """[lo, hi) bucket interval (P, 2) -> one bucket (P,): uniform sample when training, mean at eval."""
        lo, hi = interval[:, 0], interval[:, 1]
        if self.training:
            return lo + (torch.rand(lo.shape, device=lo.device) * (hi - lo)).long().clamp_max(hi - lo - 1)
        return (lo + hi) // 2

    def embed(self, tokens, local_pos, patches=None, patch_rows=None, patch_cols=None) -> torch.Tensor:
        """Token ids (B, T) [+ patches] -> input vectors (B, T, d)."""
        is_patch = tokens < 0
        x = self.wte(tokens.clamp_min(0))                                          # (B, T, d)
        if patches is not None and patches.shape[0]:
            p = self.patch_embed(patches.to(x.dtype))                              # (P, d)
            p = p + self.row_emb(self._bucket(patch_rows)) + self.col_emb(self._bucket(patch_cols))
            x = x.masked_scatter(is_patch.unsqueeze(-1), p)
        has_local = local_pos >= 0
        x = x + self.local_emb(local_pos.clamp_min(0)) * has_local.unsqueeze(-1).to(x.dtype)
        if self.config.action_inputs == 'slot':
            x = torch.where(self._is_action(tokens, local_pos).unsqueeze(-1),
                            self.action_emb(action_slots(tokens, local_pos)), x)
        return self.drop(x)

    @staticmethod
    def _is_action(tokens, local_pos) -> torch.Tensor:
        return (local_pos < 0) & (tokens != SEPARATOR_ID)

    def action_input(self, action_bin: torch.Tensor, slot: torch.Tensor) -> torch.Tensor:
        """Input vectors (1, n, d) of decoded continuous action bins (n,) at action indices slot (n,): the bin's
        embedding, or under 'slot' inputs the index's."""
        if self.config.action_inputs == 'slot':
            return self.action_emb(slot).unsqueeze(0)
        return self.wte(action_bin + CONTINUOUS_OFFSET).unsqueeze(0)

    def head(self, h: torch.Tensor, rows: slice | None = None) -> torch.Tensor:
        """Final norm + tied output head; `rows` scores only that slice of the vocabulary."""
        w = self.wte.weight if rows is None else self.wte.weight[rows]
        return F.linear(self.ln_f(h), w)

    def forward(self, tokens, local_pos, patches=None, patch_rows=None, patch_cols=None,
                loss_mask=None, rows: slice | None = None, sinks: int = 0):
        """Plain full forward (training, and the reference the KV engine is tested against).
        Returns (logits (B, T, V), loss): logits at t predict token t+1; with loss_mask (B, T) the loss
        is the mean cross-entropy over targets t+1 whose loss_mask is set (text and action tokens).
        With config.attention_window, the first `sinks` tokens stay in every query's view (attention_mask)."""
        if tokens.shape[1] > self.config.context:
            raise ValueError(f'sequence of {tokens.shape[1]} tokens exceeds context {self.config.context}')
        x = self.trunk(self.embed(tokens, local_pos, patches, patch_rows, patch_cols), sinks)
        logits = self.head(x, rows)
        loss = None
        if loss_mask is not None:
            target_mask = loss_mask[:, 1:] & (tokens[:, 1:] >= 0)
            loss = F.cross_entropy(logits[:, :-1][target_mask].float(), tokens[:, 1:][target_mask])
        return logits, loss

    def trunk(self, x: torch.Tensor, sinks: int = 0) -> torch.Tensor:
        """The blocks over embedded inputs x (B, T, d): causal, or under config.attention_window with the first
        `sinks` tokens in view (attention_mask). Every full forward (training, diagnosis) goes through here."""
        mask = attention_mask(x.shape[1], self.config.attention_window, sinks, x.device)
        for block in self.blocks:
            x = block(x, attn_mask=mask)
        return x

    def forward_cached(self, x, kv_cache, input_pos, attn_mask, rows: slice | None = None):
        """Embedded inputs x (1, T, d) at cache slots input_pos (T,) -> head logits of the LAST position
        (1, V or len(rows)). kv_cache[layer] = (keys, values), each (H, S, hd), updated in place;
        attn_mask (T, W) says which of the first W slots each position sees."""
        for block, layer_cache in zip(self.blocks, kv_cache):
            x = block(x, layer_cache, input_pos, attn_mask)
        return self.head(x[:, -1], rows)

    def num_params(self) -> dict[str, int]:
        count = lambda mods: sum(p.numel() for m in mods for p in m.parameters())  # noqa: E731
        parts = {
            'embedding_table': count([self.wte]),
            'image_block': count([self.patch_embed]),
            'position_encodings': count([self.row_emb, self.col_emb, self.local_emb,
                                         *([self.action_emb] if hasattr(self, 'action_emb') else [])]),
            'transformer': count([self.blocks, self.ln_f]),
        }
        parts['total'] = sum(parts.values())
        return parts


def action_slots(tokens: torch.Tensor, local_pos: torch.Tensor) -> torch.Tensor:
    """(B, T) index of each action token in its action vector (actions since the last '|'), 0 elsewhere."""
    is_action = Gato._is_action(tokens, local_pos)
    count = is_action.long().cumsum(1)                                              # actions up to here
    at_separator = torch.where(tokens == SEPARATOR_ID, count, torch.zeros_like(count)).cummax(1).values
    return torch.where(is_action, count - at_separator - 1, torch.zeros_like(count)).clamp(0, ACTION_SLOTS - 1)


def sequence_tensors(seq, device='cpu') -> dict[str, torch.Tensor]:
    """A TokenSequence -> the keyword arguments of Gato.forward/embed, batch of one."""
    as_long = lambda a: torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)  # noqa: E731
    return {
        'tokens': as_long(seq.tokens)[None],
        'local_pos': as_long(seq.local_pos)[None],
        'patches': torch.as_tensor(np.asarray(seq.patches, dtype=np.float32), device=device),
        'patch_rows': as_long(seq.patch_rows).reshape(-1, 2),
        'patch_cols': as_long(seq.patch_cols).reshape(-1, 2),
    }
