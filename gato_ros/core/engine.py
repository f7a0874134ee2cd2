"""KV-cache inference for Gato inside a control loop (gpt-fast style).

One control step = one PREFILL of the new observation tokens + '|', then one fixed-shape single-token
DECODE per action dimension: the prefill's last position scores action 0, each decoded action token is fed
back to score the next one, and the last decode only writes that token's keys/values into the cache.
The output head scores only the action rows of the tied embedding (the 1024 continuous bins), never the
whole 33025-row vocabulary.

The cache is preallocated, [n_layer, 2, n_head, max_context, head_dim] (see KVCache). A prompt, if any, sits
in slots [0, prompt) for the whole episode. What happens once the window is full depends on the attention:

- Full causal attention (the model's attention_window 0): slots [prompt, length) hold the retained episode
  timesteps in order, and when a step would not fit, the oldest whole timesteps are dropped. Gato has no
  global position embedding, so positions never need fixing up -- but only layer 0's keys/values are
  independent of the context: from layer 1 on, a kept timestep's keys/values were computed while it could
  attend to the dropped ones. eviction='recompute' (default) therefore re-prefills the kept timesteps, which
  gives exactly what the plain forward computes on the new window (tested against `use_kv_cache=False`); that
  step costs one prefill of the window. eviction='shift' only compacts the cache (constant time, the
  StreamingLLM-style approximation: kept timesteps still carry information from the dropped ones). A window
  that holds one timestep (a step drops the whole previous one) re-prefills nothing: each step is a fresh one.
- Sliding-window attention (attention_window W > 0; each token sees itself, the W - 1 tokens before it and
  the prompt, as `model.attention_mask`): slots [prompt, max_context) are a ring buffer. A token's
  keys/values never change once written, since everything it attends to was in the ring when it was
  computed, so overwriting the oldest slot is exact: the step costs the same forever and gives exactly what
  the plain forward with that mask computes over the whole episode (tested). A prefill writes its tokens
  before attending, so it runs in chunks of at most ring - W + 1 tokens.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from gato_ros.core.model import Gato, sequence_tensors
from gato_ros.core.stats import LatencySummary
from gato_ros.core.tokenizer import (CONTINUOUS_OFFSET, NUM_BINS, TokenSequence, detokenize_action,
                                     separator_and_actions)

DTYPES = {'fp32': torch.float32, 'bf16': torch.bfloat16}
EMPTY = 2 ** 62   # position of a ring slot that holds nothing yet: later than any query, so never attended


@dataclass(frozen=True)
class EngineConfig:
    """How the engine runs a model. Validated on construction."""

    action_dim: int = 5                # action tokens decoded per step (robots.ACTION_DIM), >= 1
    max_context: int | None = None     # KV cache slots; None = the model's context; 2..model context
    device: str = 'cpu'                # torch device string: 'cpu', 'cuda', 'cuda:1', ...
    dtype: str | None = None           # 'fp32' | 'bf16'; None = bf16 on CUDA, fp32 on CPU
    temperature: float = 0.0           # 0 = deterministic (see decoding); > 0 samples softmax(logits / temperature)
    decoding: str = 'argmax'           # with temperature 0: 'argmax' bin, or 'mean' = the bin of the expected value
                                       # of the bin distribution (for models trained on ordered soft targets)
    seed: int = 0                      # seed of the sampling generator (used only when temperature > 0)
    compile: bool = False              # torch.compile prefill and decode (CPU: inductor freezing; CUDA: CUDA graphs
                                       # for the fixed-shape decode); the first steps of each shape compile
    use_kv_cache: bool = True          # False = recompute the whole window with the plain forward (reference;
                                       # full attention only)
    eviction: str = 'recompute'        # full attention, window full: 'recompute' the kept timesteps' cache (exact)
                                       # or 'shift' it down (constant time, approximate: see module doc)
    attention_window: int | None = None  # None = the model's (GatoConfig.attention_window); 0 = full causal;
                                       # W > 0 = sliding window of W tokens in a ring-buffer cache (exact,
                                       # constant time); W <= max_context - prompt, and a step's prefill is one
                                       # pass when W <= max_context - prompt - prefill tokens + 1
    quantize: str | None = None        # None, or 'int8' (CPU, dtype 'bf16'): decode passes multiply int8 copies of the
                                       # transformer's linear weights (one scale per output row); prefills stay bf16
    threads: int | None = None         # torch intra-op CPU threads (process-wide: torch.set_num_threads) or None
    stats_window: int = 200            # recent steps kept for the latency percentiles, >= 1

    def __post_init__(self):
        if self.action_dim < 1:
            raise ValueError(f'EngineConfig.action_dim must be >= 1, got {self.action_dim}')
        if self.max_context is not None and self.max_context < 2:
            raise ValueError(f'EngineConfig.max_context must be >= 2 or None, got {self.max_context}')
        if self.dtype not in (None, *DTYPES):
            raise ValueError(f'EngineConfig.dtype must be one of {sorted(DTYPES)} or None, got {self.dtype!r}')
        if self.decoding not in ('argmax', 'mean'):
            raise ValueError(f"EngineConfig.decoding must be 'argmax' or 'mean', got {self.decoding!r}")
        if not self.temperature >= 0.0:
            raise ValueError(f'EngineConfig.temperature must be >= 0, got {self.temperature}')
        if self.eviction not in ('recompute', 'shift'):
            raise ValueError(f"EngineConfig.eviction must be 'recompute' or 'shift', got {self.eviction!r}")
        if self.attention_window is not None and self.attention_window < 0:
            raise ValueError(f'EngineConfig.attention_window must be >= 0 or None, got {self.attention_window}')
        if self.quantize not in (None, 'int8'):
            raise ValueError(f"EngineConfig.quantize must be None or 'int8', got {self.quantize!r}")
        if self.quantize and self.dtype != 'bf16':   # aten's int8 kernel with fp32 activations: 7x slower GEMV
            raise ValueError(f"EngineConfig.quantize={self.quantize!r} needs dtype='bf16', got {self.dtype!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f'EngineConfig.threads must be >= 1 or None, got {self.threads}')
        if self.stats_window < 1:
            raise ValueError(f'EngineConfig.stats_window must be >= 1, got {self.stats_window}')
        torch.device(self.device)  # raises on a malformed device string

    @property
    def torch_dtype(self) -> torch.dtype:
        if self.dtype is None:
            return torch.bfloat16 if torch.device(self.device).type == 'cuda' else torch.float32
        return DTYPES[self.dtype]


@dataclass(frozen=True)
class EngineResult:
    action_ids: np.ndarray   # int64 (A,) vocabulary ids in [32000, 33024)
    action: np.ndarray       # float64 (A,) bin centres in [-1, 1] (actions are binned without mu-law)
    logits: torch.Tensor     # (A, 1024) float32 action-bin logits, on the engine's device
    latency_s: float         # wall time of this step (stats only)
    evicted: int             # timesteps dropped from the window to make room for this step


class Int8Linear(torch.nn.Module):
    """Weight-only int8 for the decode: a single-token pass (memory bound: it reads every weight once) multiplies
    int8 weights with one scale per output row by aten's _weight_int8pack_mm (a quarter of the fp32 bytes;
    measured 2x faster than the bf16 GEMV here), while a prefill keeps the dense bf16 matmul (that kernel is
    ~7x slower than AMX bf16 for 48 rows)."""

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        w = linear.weight.detach().float()
        scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
        self.register_buffer('weight_int8', (w / scale[:, None]).round().clamp(-127, 127).to(torch.int8))
        self.register_buffer('scale', scale.to(linear.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if rows.shape[0] > 1:
            return F.linear(x, self.weight, self.bias)
        y = torch._weight_int8pack_mm(rows, self.weight_int8, self.scale).reshape(*x.shape[:-1], -1)
        return y if self.bias is None else y + self.bias


def quantize_int8(module: torch.nn.Module) -> None:
    """Replace every nn.Linear inside `module` by an Int8Linear, in place."""
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, Int8Linear(child))
        else:
            quantize_int8(child)


class KVCache(torch.nn.Module):
    """Preallocated keys/values, logically [n_layer, 2, n_head, slots, head_dim], held as one buffer per layer
    and kind: torch.compile then writes each in place (views into a single tensor made it copy the whole
    cache on every decode step, ~6x slower). Also the module the compiled prefill and decode belong to."""

    def __init__(self, model: Gato, slots: int, rows: slice):
        super().__init__()
        cfg, self.rows, self.model = model.config, rows, model
        p = model.wte.weight
        for i in range(cfg.n_layer):
            for kind in 'kv':
                self.register_buffer(f'{kind}{i}', torch.zeros(cfg.n_head, slots, cfg.head_dim, dtype=p.dtype,
                                                               device=p.device))

    @property
    def layers(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(getattr(self, f'k{i}'), getattr(self, f'v{i}')) for i in range(self.model.config.n_layer)]

    def shift(self, start: int, end: int, by: int) -> None:
        """Move slots [start + by, end) down to [start, end - by)."""
        for pair in self.layers:
            for buf in pair:
                buf[:, start:end - by] = buf[:, start + by:end].clone()

    def prefill(self, x: torch.Tensor, slots: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """Embedded tokens x (1, T, d) written at cache slots (T,) -> the last one's bin logits (1, bins)."""
        return self.model.forward_cached(x, self.layers, slots, attn_mask, self.rows)

    def decode(self, action_bin: torch.Tensor, index: torch.Tensor, slots: torch.Tensor,
               attn_mask: torch.Tensor) -> torch.Tensor:
        """One action token (1,), the index-th of its vector (1,), at cache slot (1,) -> the next action's bin
        logits (1, bins)."""
        return self.prefill(self.model.action_input(action_bin, index), slots, attn_mask)   # (1, 1, d); no local pos


class GatoEngine:
    """Runs one episode at a time. Takes over `model`: it is moved/cast (and quantised) in place and put in
    eval mode."""

    def __init__(self, model: Gato, config: EngineConfig = EngineConfig()):
        cfg = model.config
        self.config = config
        self.max_context = config.max_context or cfg.context
        if self.max_context > cfg.context:
            raise ValueError(f'EngineConfig.max_context={self.max_context} exceeds the model context {cfg.context}')
        self.attention_window = cfg.attention_window if config.attention_window is None else config.attention_window
        if self.attention_window > self.max_context:
            raise ValueError(f'attention window {self.attention_window} exceeds max_context {self.max_context} '
                             '(the ring buffer must hold a whole window)')
        if self.attention_window and not config.use_kv_cache:
            raise ValueError('EngineConfig.use_kv_cache=False is the full-attention reference; with an attention '
                             'window the reference is the plain forward over the whole episode (Gato.forward)')
        if config.quantize and torch.device(config.device).type != 'cpu':
            raise ValueError(f"EngineConfig.quantize={config.quantize!r} runs on CPU only, got device {config.device}")
        if config.threads:
            torch.set_num_threads(config.threads)
        self.device, self.dtype = torch.device(config.device), config.torch_dtype
        self.model = model.to(device=self.device, dtype=self.dtype).eval()
        if config.quantize == 'int8':
            quantize_int8(self.model.blocks)
        self.rows = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS)
        S = self.max_context
        self.cache = KVCache(self.model, S, self.rows)
        self.positions = torch.arange(S, device=self.device)
        self.causal = torch.ones(S, S, dtype=torch.bool, device=self.device).tril()   # [query slot, key slot]
        self.slot_pos = torch.full((S,), EMPTY, device=self.device)                  # ring: position in each slot
        self.action_index = torch.arange(config.action_dim, device=self.device)      # each action token's index
        self.generator = torch.Generator(device=self.device)
        edges = torch.linspace(-1.0, 1.0, NUM_BINS + 1, device=self.device)
        self.bin_centres = (edges[:-1] + edges[1:]) / 2                                # (bins,)
        self._prefill_pass, self._decode = self.cache.prefill, self.cache.decode
        if config.compile:
            if self.device.type == 'cpu':   # weights as constants: inductor pre-packs them for oneDNN
                import torch._inductor.config as inductor_config
                inductor_config.freezing = True
            mode = 'reduce-overhead' if self.device.type == 'cuda' else None   # CUDA graphs on CUDA
            self._prefill_pass = torch.compile(self.cache.prefill, fullgraph=True)
            self._decode = torch.compile(self.cache.decode, mode=mode, fullgraph=True)
        self.latencies: collections.deque[float] = collections.deque(maxlen=config.stats_window)
        self.reset()

    # ---- episode state -------------------------------------------------------------------------------------
    def reset(self, prompt=None) -> None:
        """Start an episode. `prompt` (a TokenSequence of whole timesteps, e.g. a successful demonstration)
        is kept at the front of the window (in view of every token) for the whole episode."""
        self.generator.manual_seed(self.config.seed)
        self.prompt = prompt if prompt is not None and len(prompt) else None
        self.timesteps: collections.deque[TokenSequence] = collections.deque()  # retained episode timesteps
        self.length = 0          # tokens of the prompt and the retained timesteps (the window)
        self.position = 0        # position of the next token in the episode (prompt included)
        self.slot_pos.fill_(EMPTY)
        if self.prompt is not None:
            if len(self.prompt) + max(self.attention_window, 1) > self.max_context:   # the ring holds a window
                what = f' plus attention window {self.attention_window}' if self.attention_window else ''
                raise ValueError(f'prompt of {len(self.prompt)} tokens{what} does not fit '
                                 f'max_context {self.max_context}')
            if self.config.use_kv_cache:
                with torch.inference_mode():
                    self._prefill(self.prompt, 0)
            self.length = self.position = len(self.prompt)

    @property
    def prompt_length(self) -> int:
        return 0 if self.prompt is None else len(self.prompt)

    def window(self) -> TokenSequence:
        """The prompt followed by the retained timesteps: what the cache holds, as whole timesteps (with an
        attention window, the ring may also hold the tail of one older timestep)."""
        return TokenSequence.concat(([self.prompt] if self.prompt is not None else []) + list(self.timesteps))

    def _make_room(self, need: int) -> int:
        """Drop the fewest whole oldest timesteps (never the prompt) so that `need` more tokens fit."""
        if self.prompt_length + need > self.max_context and not self.attention_window:
            raise ValueError(f'one step ({need} tokens) plus the prompt ({self.prompt_length}) exceeds '
                             f'max_context {self.max_context}')
        if self.attention_window:
            # Ring: the step overwrites the oldest slots; nothing is recomputed, a timestep is merely no
            # longer wholly held once its first token is overwritten.
            first_kept = self.position + need - (self.max_context - self.prompt_length)
            evicted = 0
            while self.timesteps and self.position - (self.length - self.prompt_length) < first_kept:
                self.length -= len(self.timesteps.popleft())
                evicted += 1
            return evicted
        dropped, evicted = 0, 0
        while self.length - dropped + need > self.max_context:
            dropped += len(self.timesteps.popleft())
            evicted += 1
        if not dropped:
            return 0
        start, end = self.prompt_length, self.length
        if self.config.use_kv_cache and self.config.eviction == 'shift':
            self.cache.shift(start, end, dropped)
        elif self.config.use_kv_cache and self.timesteps:
            # Exact: deeper-layer keys/values of the kept timesteps attended to the dropped ones, so they
            # are recomputed over the new window. The prompt precedes everything dropped and stays valid.
            self._prefill(TokenSequence.concat(list(self.timesteps)), start)
        self.length = self.position = end - dropped
        return evicted

    # ---- model calls ---------------------------------------------------------------------------------------
    def _place(self, start: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Cache slots (n,) and attention mask (n, width) of n tokens at episode positions [start, start + n).
        Compiled: attend over all slots (fixed shapes, one graph); eager: only over the used ones."""
        end, S = start + n, self.max_context
        width = S if self.config.compile else min(end, S)
        if not self.attention_window:
            return self.positions[start:end], self.causal[start:end, :width]
        P, W = self.prompt_length, self.attention_window
        q = torch.arange(start, end, device=self.device)
        slots = torch.where(q < P, q, (q - P) % (S - P) + P)
        self.slot_pos[slots] = q
        keys = self.slot_pos[:width]
        return slots, (keys <= q[:, None]) & ((keys > q[:, None] - W) | (keys < P))

    def _prefill(self, seg: TokenSequence, start: int) -> torch.Tensor:
        """Write a segment's keys/values at positions [start, start+n); logits of its last position (1, bins).
        With an attention window, in chunks that never overwrite a slot a later token of the chunk attends to."""
        x = self.model.embed(**sequence_tensors(seg, self.device))                # (1, n, d)
        n = x.shape[1]
        chunk = n if not self.attention_window else self.max_context - self.prompt_length - self.attention_window + 1
        for i in range(0, n, chunk):
            part = x[:, i:i + chunk]
            logits = self._prefill_pass(part, *self._place(start + i, part.shape[1]))
        return logits

    def _pick(self, logits: torch.Tensor) -> torch.Tensor:
        """(1, bins) -> (1,) bin index, on device (no host sync)."""
        if self.config.temperature == 0.0 and self.config.decoding == 'mean':
            value = torch.softmax(logits.float(), dim=-1) @ self.bin_centres              # (1,) in [-1, 1]
            return ((value + 1.0) * (NUM_BINS / 2)).long().clamp_(0, NUM_BINS - 1)
        if self.config.temperature == 0.0:
            return logits.argmax(dim=-1)
        probs = torch.softmax(logits.float() / self.config.temperature, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator)[:, 0]

    def _step_kv(self, obs: TokenSequence) -> tuple[torch.Tensor, torch.Tensor]:
        A = self.config.action_dim
        bins = torch.empty(A, dtype=torch.long, device=self.device)
        all_logits = torch.empty(A, NUM_BINS, dtype=torch.float32, device=self.device)
        logits = self._prefill(obs, self.position)
        for a, p in enumerate(range(self.position + len(obs), self.position + len(obs) + A)):
            all_logits[a] = logits[0]
            bins[a:a + 1] = self._pick(logits)
            logits = self._decode(bins[a:a + 1], self.action_index[a:a + 1], *self._place(p, 1))
        return bins, all_logits

    def _step_recompute(self, obs: TokenSequence) -> tuple[torch.Tensor, torch.Tensor]:
        """Reference path: score each action token with a full forward over the window (no cache)."""
        A = self.config.action_dim
        bins = torch.empty(A, dtype=torch.long, device=self.device)
        all_logits = torch.empty(A, NUM_BINS, dtype=torch.float32, device=self.device)
        inputs = sequence_tensors(TokenSequence.concat([self.window(), obs]), self.device)
        for a in range(A):
            logits, _ = self.model(**inputs, rows=self.rows)
            all_logits[a] = logits[0, -1]
            bins[a:a + 1] = self._pick(logits[:, -1])
            action = (bins[a:a + 1] + CONTINUOUS_OFFSET)[None]
            inputs['tokens'] = torch.cat([inputs['tokens'], action], dim=1)
            inputs['local_pos'] = torch.cat([inputs['local_pos'], torch.full_like(action, -1)], dim=1)
        return bins, all_logits

    # ---- the control step ----------------------------------------------------------------------------------
    def step(self, observation) -> EngineResult:
        """Observation TokenSequence (tokenize_observation: observation tokens only) -> the action."""
        start = time.perf_counter()
        if (observation.local_pos < 0).any():
            raise ValueError('GatoEngine.step expects observation tokens only (tokenize_observation), '
                             "got a sequence containing '|' or action tokens")
        obs = TokenSequence.concat([observation, separator_and_actions()])
        A = self.config.action_dim
        with torch.inference_mode():
            evicted = self._make_room(len(obs) + A)
            run = self._step_kv if self.config.use_kv_cache else self._step_recompute
            bins, logits = run(obs)
            bins = bins.cpu().numpy()                                             # the one host sync
        ids = bins + CONTINUOUS_OFFSET
        timestep = TokenSequence.concat([observation, separator_and_actions(ids)])
        self.timesteps.append(timestep)
        self.length += len(timestep)
        self.position += len(timestep)
        latency = time.perf_counter() - start
        self.latencies.append(latency)
        return EngineResult(ids, detokenize_action(ids), logits, latency, evicted)

    def stats(self) -> dict:
        """LatencySummary of the recent steps: count, mean_ms, p50_ms, p99_ms, max_ms."""
        return LatencySummary.from_seconds(self.latencies).to_dict()
