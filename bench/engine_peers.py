"""Engine vs peers: the steady-state control step of `bench engine` beside what a user would otherwise reach for.

The same model shapes (layers, width, heads, head width, feed-forward, the 1024 scored action rows, 48 prefill
tokens a step of which 32 are image patches, 5 action tokens decoded one at a time), each step one prefill and
5 decodes with argmax feedback, in one run and taking turns step by step:

  onnxruntime   the same weights exported to ONNX (patch embedding included; one graph with past keys/values
                in and present keys/values out), run by ONNX Runtime with all graph optimisations
  transformers  a Hugging Face Llama decoder of equal shape (GELU-gated MLP of the same width, as GEGLU) with its
                own DynamicCache; the prefill's inputs_embeds come from our patch embedding, timed in its step

in two windows: one_timestep (an empty cache before each step, as the shipped policy's window) and window_1024
(1024 - 53 past tokens in the cache; the peers' caches are cut back to them after each step). Peers run fp32;
ours runs fp32 and with the EngineConfig options given (--dtype/--quantize/--compile). Prints ours / peer per
preset and window (< 1: ours is faster), one JSON line per preset.

A script of its own, not a `gato-ros bench` entry: the peers are optional packages, outside the runtime set
(pip install -r requirements-bench.txt). Run it from a checkout: python bench/engine_peers.py [options].
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F

from gato_ros.benchmarks import OneLineParser
from gato_ros.benchmarks.engine import ACTIONS, GATO_WINDOW, random_observation, steady_engines, step_engine
from gato_ros.core.engine import EngineConfig
from gato_ros.core.model import PRESETS, Gato, sequence_tensors
from gato_ros.core.stats import LatencySummary
from gato_ros.core.tokenizer import (CONTINUOUS_OFFSET, NUM_BINS, TokenSequence, separator_and_actions,
                                     tokenize_observation, tokenize_timestep)

WINDOWS = ('one_timestep', 'window_1024')


class OnnxStep(torch.nn.Module):
    """Gato's embedding + blocks + action head with explicit past keys/values (L, H, P, hd): the exported graph,
    with image patches (the prefill) or without (a decode: ONNX Runtime's GroupNorm refuses zero patches)."""

    def __init__(self, model: Gato, patches: bool):
        super().__init__()
        self.model, self.patches = model, patches

    def forward(self, tokens, local_pos, *rest):
        m = self.model
        *patches, past_k, past_v = rest
        x = m.embed(tokens, local_pos, *patches)                                       # (1, T, d)
        T, P = x.shape[1], past_k.shape[2]
        mask = torch.arange(P + T)[None, :] <= torch.arange(T)[:, None] + P             # causal after the past
        keys, values = [], []
        for i, block in enumerate(m.blocks):
            a = block.attn
            q, k, v = a.qkv(block.ln_1(x)).view(1, T, 3, a.n_head, a.head_dim).permute(2, 0, 3, 1, 4)
            k, v = torch.cat([past_k[i:i + 1], k], dim=2), torch.cat([past_v[i:i + 1], v], dim=2)
            keys.append(k[0])
            values.append(v[0])
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            x = x + a.proj(y.transpose(1, 2).reshape(1, T, -1))
            x = x + block.mlp(block.ln_2(x))
        return m.head(x[:, -1], slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS)), torch.stack(keys), \
            torch.stack(values)


def _inputs(seq) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in sequence_tensors(seq).items()}


def onnx_session(model: Gato, sample, folder: pathlib.Path, threads: int, patches: bool):
    """Export OnnxStep of `model` (dynamic token, patch and past lengths) and open it in ONNX Runtime."""
    import onnxruntime as ort

    cfg = model.config
    empty = torch.zeros(cfg.n_layer, cfg.n_head, 0, cfg.head_dim)
    inputs = sequence_tensors(sample)
    names = ['tokens', 'local_pos', *(['patches', 'patch_rows', 'patch_cols'] if patches else []), 'past_k', 'past_v']
    dynamic = {'tokens': {1: 'T'}, 'local_pos': {1: 'T'}, 'patches': {0: 'N'}, 'patch_rows': {0: 'N'},
               'patch_cols': {0: 'N'}, 'past_k': {2: 'P'}, 'past_v': {2: 'P'}, 'k': {2: 'PT'}, 'v': {2: 'PT'}}
    path = folder / f'gato{"_prefill" if patches else "_decode"}.onnx'
    torch.onnx.export(OnnxStep(model, patches).eval(), tuple(inputs[n] for n in names[:-2]) + (empty, empty),
                      str(path), input_names=names, output_names=['logits', 'k', 'v'],
                      dynamic_axes={n: dynamic[n] for n in names + ['k', 'v']}, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


class OnnxPeer:
    """One episode's past keys/values in ONNX Runtime; step() leaves them as they were."""

    def __init__(self, prefill, decode, cfg):
        empty = np.zeros((cfg.n_layer, cfg.n_head, 0, cfg.head_dim), np.float32)
        self.prefill, self.decode, self.past = prefill, decode, (empty, empty)

    def prefill_past(self, seq) -> None:
        _, k, v = self.prefill.run(None, {**_inputs(seq), 'past_k': self.past[0], 'past_v': self.past[1]})
        self.past = (k, v)

    def step(self, obs_and_sep) -> np.ndarray:
        k, v = self.past
        logits, k, v = self.prefill.run(None, {**_inputs(obs_and_sep), 'past_k': k, 'past_v': v})
        bins = []
        for _ in range(ACTIONS):
            bins.append(int(logits.argmax()))
            token = {'tokens': np.array([[bins[-1] + CONTINUOUS_OFFSET]]), 'local_pos': np.array([[-1]])}
            logits, k, v = self.decode.run(None, {**token, 'past_k': k, 'past_v': v})
        return np.array(bins)


def llama_of_equal_shape(model: Gato):
    """A Hugging Face Llama decoder with Gato's shapes (fp32, random weights, SDPA attention)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = model.config
    config = LlamaConfig(vocab_size=NUM_BINS, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
                         num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head,
                         num_key_value_heads=cfg.n_head, head_dim=cfg.head_dim, hidden_act='gelu',
                         max_position_embeddings=2 * GATO_WINDOW, tie_word_embeddings=True)
    torch.manual_seed(0)
    return LlamaForCausalLM._from_config(config, attn_implementation='sdpa').eval()


class TransformersPeer:
    """One episode in the Llama's own DynamicCache; step() crops it back to the past tokens."""

    def __init__(self, llama, embed):
        from transformers import DynamicCache

        self.llama, self.embed = llama, embed
        self.cache, self.past = DynamicCache(config=llama.config), 0

    def prefill_past(self, seq) -> None:
        with torch.inference_mode():
            self.llama(inputs_embeds=self.embed(**sequence_tensors(seq)), cache=self.cache, use_cache=True)
        self.past = self.cache.get_seq_length()

    def step(self, obs_and_sep) -> np.ndarray:
        with torch.inference_mode():
            out = self.llama(inputs_embeds=self.embed(**sequence_tensors(obs_and_sep)), cache=self.cache,
                             use_cache=True, logits_to_keep=1)
            bins = []
            for _ in range(ACTIONS):
                bins.append(out.logits[0, -1].argmax())
                out = self.llama(input_ids=bins[-1].view(1, 1), cache=self.cache, use_cache=True)
            self.cache.crop(self.past - self.cache.get_seq_length())   # back to the past tokens only
        return torch.stack(bins).numpy()


def _time_in_turns(runners: dict, steps: int, warmup: int) -> dict[str, dict]:
    samples = {name: [] for name in runners}
    for k in range(warmup + steps):
        for name, run in runners.items():
            start = time.perf_counter()
            run(k)
            if k >= warmup:
                samples[name].append(time.perf_counter() - start)
    return {name: LatencySummary.from_seconds(s).to_dict() for name, s in samples.items()}


def compare(preset: str, options: dict, steps: int, warmup: int, threads: int, folder: pathlib.Path) -> dict:
    rng = np.random.default_rng(0)

    def model() -> Gato:
        torch.manual_seed(0)
        return Gato(PRESETS[preset]).eval()

    observations = [tokenize_observation(random_observation(rng)) for _ in range(8)]
    with_sep = [TokenSequence.concat([o, separator_and_actions()]) for o in observations]
    per_step = len(with_sep[0]) + ACTIONS
    base = EngineConfig(action_dim=ACTIONS)
    ours = {'ours_fp32': steady_engines(model(), base, per_step)}
    if options:
        ours['ours'] = steady_engines(model(), dataclasses.replace(base, **options), per_step)
    runners = {}
    for name, engines in ours.items():
        for window, engine in zip(WINDOWS, engines.values()):
            engine.reset()
            for i in range(GATO_WINDOW // per_step + 2):   # fill the window: every later step evicts
                step_engine(engine, observations[i % 8])
            runners[f'{name}/{window}'] = lambda k, e=engine: step_engine(e, observations[k % 8])
    # The peers' 1024 window: as many whole past timesteps as leave room for the step.
    past = TokenSequence.concat([tokenize_timestep(random_observation(rng), rng.uniform(-1, 1, ACTIONS))
                                 for _ in range((GATO_WINDOW - per_step) // per_step)])
    peer_model = model()
    with torch.no_grad():
        sessions = [onnx_session(peer_model, sample, folder, threads, patches)
                    for sample, patches in ((with_sep[0], True), (separator_and_actions(), False))]
        llama = llama_of_equal_shape(peer_model)
        for window in WINDOWS:
            peers = {'onnxruntime': OnnxPeer(*sessions, peer_model.config),
                     'transformers': TransformersPeer(llama, peer_model.embed)}
            for name, peer in peers.items():
                if window == 'window_1024':
                    peer.prefill_past(past)
                runners[f'{name}/{window}'] = lambda k, p=peer: p.step(with_sep[k % 8])
        stats = _time_in_turns(runners, steps, warmup)
    result = {'preset': preset, 'options': options, 'threads': threads, 'past_tokens_1024': len(past),
              **{f'{k}_ms_p50': v['p50_ms'] for k, v in stats.items()}}
    for window in WINDOWS:
        for peer in ('onnxruntime', 'transformers'):
            for name in ours:
                result[f'{name}_over_{peer}/{window}'] = round(stats[f'{name}/{window}']['p50_ms']
                                                               / stats[f'{peer}/{window}']['p50_ms'], 3)
    return result


def main(argv=None) -> int:
    parser = OneLineParser(prog='bench/engine_peers.py', description=__doc__.splitlines()[0])
    parser.add_argument('--presets', nargs='+', default=['tiny', 'small', 'gato-79m'], choices=sorted(PRESETS))
    parser.add_argument('--dtype', choices=('fp32', 'bf16'), default=None, help='our second run: dtype')
    parser.add_argument('--quantize', choices=('int8',), default=None, help='our second run: int8 weights')
    parser.add_argument('--compile', action='store_true', help='our second run: torch.compile')
    parser.add_argument('--steps', type=int, default=20, help='measured steps of each (after warm-up)')
    parser.add_argument('--warmup', type=int, default=3, help='unmeasured steps first')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads of every runtime (default: torch)')
    args = parser.parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or (args.threads is not None and args.threads < 1):
        parser.error('--steps and --threads must be >= 1, --warmup >= 0')
    try:
        import onnxruntime  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        parser.error(f'{exc.name} is missing: the peers need pip install -r requirements-bench.txt')
    options = {k: v for k, v in (('dtype', args.dtype), ('quantize', args.quantize), ('compile', args.compile)) if v}
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as folder:
        for preset in args.presets:
            print(json.dumps(compare(preset, options, args.steps, args.warmup, threads, pathlib.Path(folder))),
                  flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
