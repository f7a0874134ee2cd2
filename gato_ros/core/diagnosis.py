"""Teacher-forced diagnosis of a checkpoint on held-out episodes: does it read the observation, or copy?

For every timestep t of each episode the model sees the recorded window ending at t (true observations and
true past actions) and predicts the actions of t. The per-dimension mean absolute error of its decoded action
(argmax bin and expected value) stands next to two trivial baselines -- repeating the previous action and
predicting zero -- overall and per phase of the scripted expert (its phase at each recorded state, see
expert_phases). With a history of several timesteps the same is measured with the past actions blanked
(set to 0): a policy that copies its history gets much worse without it.

Teacher forcing conditions each action dimension on the recorded ones before it; closed loop conditions it on the
policy's own. `model_free_running` decodes the way the engine does, feeding each decoded dimension back: a model
whose later dimensions are read off the earlier ones scores well teacher-forced and badly here.

The gripper is bang-bang (grip > 0 closes), so its error is also reported as a decision: how often the decoded
grip falls on the label's side of 0, and how often it is within 0.5 of 0, where a small change in the image
flips the command (a policy that opens and closes at every other step never holds a block).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np
import torch

from .data.dataset import EpisodeTokens, collate
from .data.mcap_io import Episode
from .data.relabel import expert_labels
from .policy_spec import ACTION_LAYOUT
from .tokenizer import CONTINUOUS_OFFSET, NUM_BINS, TokenSequence, tokenize_action

BIN_CENTRES = (torch.arange(NUM_BINS, dtype=torch.float32) + 0.5) * (2.0 / NUM_BINS) - 1.0


def expert_phases(tokens: EpisodeTokens) -> list[str]:
    """The scripted expert's phase at every step, from the recorded states (needs block poses)."""
    return [phase.value for phase in expert_labels(tokens.episode)[1]]


def _window(tokens: EpisodeTokens, t: int, history: int, blank_past: bool) -> TokenSequence:
    parts = []
    for s in range(max(0, t - history + 1), t + 1):
        if blank_past and s < t:
            parts.append(tokens_with_action(tokens, s, np.zeros_like(tokens.episode.actions[s])))
        else:
            parts.append(tokens.timestep(s))
    return TokenSequence.concat(parts)


def tokens_with_action(tokens: EpisodeTokens, t: int, action) -> TokenSequence:
    """Timestep t of the episode with another action in place of the recorded one."""
    seq = tokens.timestep(t)
    ids = seq.tokens.copy()
    ids[seq.is_action] = tokenize_action(action)
    return dataclasses.replace(seq, tokens=ids)


@torch.no_grad()
def predict(model, windows: list[TokenSequence], action_dim: int, batch_size: int = 64,
            feedback: str | None = None) -> tuple[np.ndarray, ...]:
    """(argmax, expected value) decoded actions (N, action_dim) of each window's last timestep. feedback None:
    teacher-forced, each dimension predicted after the recorded actions before it; 'mean' or 'argmax':
    free-running, each decoded dimension fed back as the engine does in closed loop (its expected value's bin, or
    the argmax bin) before the next is predicted."""
    rows = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS)
    argmax, mean = [], []
    for i in range(0, len(windows), batch_size):
        chunk = windows[i:i + batch_size]
        batch = collate(chunk)
        tokens, rows_of = batch['tokens'].clone(), torch.arange(len(chunk))
        ends = torch.tensor([len(w) for w in chunk])
        # Logits at position p predict token p + 1: the last action_dim tokens are predicted from [-A-1, -1).
        index = ends[:, None] - action_dim - 1 + torch.arange(action_dim)[None]      # (B, A)
        p = torch.empty(len(chunk), action_dim, NUM_BINS)
        for a in range(action_dim if feedback else 1):
            x = model.trunk(model.embed(tokens, batch['local_pos'], batch['patches'], batch['patch_rows'],
                                        batch['patch_cols']))
            probs = torch.softmax(model.head(x[rows_of[:, None], index], rows).float(), dim=-1)   # (B, A, bins)
            if not feedback:
                p = probs
                break
            p[:, a] = probs[:, a]
            value = BIN_CENTRES[p[:, a].argmax(-1)] if feedback == 'argmax' else p[:, a] @ BIN_CENTRES
            tokens[rows_of, index[:, a] + 1] = torch.as_tensor(tokenize_action(value.clamp(-1, 1).numpy()))
        argmax.append(BIN_CENTRES[p.argmax(-1)].numpy())
        mean.append((p @ BIN_CENTRES).numpy())
    return np.concatenate(argmax), np.concatenate(mean)


def _mae(errors: np.ndarray) -> dict:
    per_dim = errors.mean(0)
    return {'mean': round(float(per_dim.mean()), 4), **{k: round(float(v), 4) for k, v in zip(ACTION_LAYOUT, per_dim)}}


UNCERTAIN_GRIP = 0.5   # a decoded grip this close to 0 is a coin toss between open and close


def grip_decision(grip: np.ndarray, label: np.ndarray) -> dict:
    """Share of steps whose decoded grip is on the label's side of 0, and share within UNCERTAIN_GRIP of 0."""
    return {'timesteps': len(grip), 'agreement': round(float(((grip > 0) == (label > 0)).mean()), 4),
            'uncertain': round(float((np.abs(grip) < UNCERTAIN_GRIP).mean()), 4)}


def diagnose(model, episodes: list[Episode], history: int = 1, every: int = 1, decoding: str = 'mean') -> dict:
    """The teacher-forced report (see module doc) for `model` (a Gato in eval mode) on `episodes`, and
    `model_free_running`: the action as closed loop decodes it under `decoding` ('mean' or 'argmax')."""
    model.eval()
    windows, blanked, targets, previous, phases = [], [], [], [], []
    for episode in episodes:
        tokens = EpisodeTokens(episode)
        episode_phases = expert_phases(tokens) if episode.blocks is not None else ['unknown'] * len(episode)
        for t in range(1, len(episode), every):
            windows.append(_window(tokens, t, history, blank_past=False))
            if history > 1:
                blanked.append(_window(tokens, t, history, blank_past=True))
            targets.append(episode.actions[t])
            previous.append(episode.actions[t - 1])
            phases.append(episode_phases[t])
    targets, previous = np.asarray(targets), np.asarray(previous)
    action_dim = targets.shape[1]
    argmax, mean = predict(model, windows, action_dim)
    errors = {'model_argmax': np.abs(argmax - targets), 'model_mean': np.abs(mean - targets),
              'copy_previous': np.abs(previous - targets), 'predict_zero': np.abs(targets)}
    # 'slot' inputs never read a decoded value back: their free-running decode is the teacher-forced one
    free = ((argmax, mean) if model.config.action_inputs == 'slot'
            else predict(model, windows, action_dim, feedback=decoding))
    errors['model_free_running'] = np.abs(free[0 if decoding == 'argmax' else 1] - targets)
    if blanked:
        errors['model_mean_past_actions_blanked'] = np.abs(predict(model, blanked, action_dim)[1] - targets)
    by_phase: dict[str, list[int]] = defaultdict(list)
    for i, phase in enumerate(phases):
        by_phase[phase].append(i)
    return {'episodes': len(episodes), 'timesteps': len(targets), 'history': history,
            'mae': {name: _mae(e) for name, e in errors.items()},
            'mae_by_phase': {phase: {'timesteps': len(idx), **{name: _mae(e[idx]) for name, e in errors.items()}}
                             for phase, idx in sorted(by_phase.items())},
            'grip_decision': {**grip_decision(mean[:, -1], targets[:, -1]),
                              'by_phase': {phase: grip_decision(mean[idx, -1], targets[idx, -1])
                                           for phase, idx in sorted(by_phase.items())}}}
