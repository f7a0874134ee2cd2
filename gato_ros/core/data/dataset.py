"""Episodes -> Gato token sequences for behaviour cloning (docs/design.md §3).

Every control step t of an episode becomes one timestep: the observation (Observer: camera images, joint
positions, gripper closure from the finger joints, tool pose from forward kinematics) then '|' then the
5-D action. A training
item is a crop of whole consecutive timesteps that fits the context. With probability `prompt_prob` (Gato:
25%) a prompt from ANOTHER episode of the same robot and task is put in front: half the time that episode's
last timesteps, half the time a window at a uniformly random place in it. Prompt tokens are context, not
targets (loss mask off). At evaluation the prompt is the end of a successful demonstration
(`demonstration_prompt`).

Simulated episodes also carry the blocks' ground-truth poses. They become auxiliary targets (AUX_DIM values per
own timestep, see aux_targets), regressed from the hidden state at that timestep's '|' during training only:
the policy never reads them, but learning them teaches the image encoder where the blocks are.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass
from functools import cache

import numpy as np
import torch

from ..observation import build_observation, observer_for
from ..robots import load_profile
from ..tokenizer import PATCH_SIZE, TokenSequence, tokenize_timestep
from .mcap_io import BLOCK_ORDER, Episode

# Auxiliary targets per block (BLOCK_ORDER): position relative to the workspace centre on the table, scaled
# by AUX_SCALE to about [-1, 1], then sin/cos of 4 x yaw (a cube looks the same every quarter turn), then the
# same of 4 x (yaw - tool yaw): the turn the fingers still need, which the policy's yaw rate has to read from
# the images (the block's world yaw alone left a one-timestep policy's yaw rate at 0.80 error on its own states).
AUX_CENTRE = np.array([0.525, 0.0, 0.1])
AUX_SCALE = np.array([0.15, 0.25, 0.1])
AUX_PER_BLOCK = 7
AUX_DIM = AUX_PER_BLOCK * len(BLOCK_ORDER)


PATCH_AUX_DIM = 3 * len(BLOCK_ORDER)  # per image patch: each block's presence, then its (du, dv) in the patch


@cache
def _projections(robot: str, cameras: tuple[str, ...], image_size: int):
    from ..sim.scene import CameraProjections, SimConfig   # MuJoCo, only for episodes with block poses
    return CameraProjections(SimConfig(robot=robot, cameras=cameras, image_size=image_size), load_profile(robot))


def patch_targets(blocks: np.ndarray, q: np.ndarray, info, image_size: int) -> np.ndarray:
    """(T, blocks, 7) poses and (T, n) arm joint positions -> (T, patches, PATCH_AUX_DIM) float32 dense targets
    for every image patch, in the tokenizer's patch order (cameras in key order, raster order inside each): which
    block centres project into the patch, and where inside it (0..1 across, 0..1 down). They teach each patch
    token what it shows; q places the cameras on the tool."""
    cams = sorted(info.cameras)                  # observation keys 'image_<camera>' sort like the camera names
    side = image_size // PATCH_SIZE
    projections = _projections(info.robot, tuple(info.cameras), image_size)(q)
    homogeneous = np.concatenate([blocks[..., :3], np.ones(blocks.shape[:-1] + (1,))], -1)   # (T, B, 4)
    out = np.zeros((len(blocks), len(cams), side * side, PATCH_AUX_DIM), np.float32)
    t_index = np.arange(len(blocks))
    for c, cam in enumerate(cams):
        uvw = np.einsum('tbk,tjk->tbj', homogeneous, projections[cam])             # (T, B, 3)
        uv = uvw[..., :2] / uvw[..., 2:3] / PATCH_SIZE                              # in patches
        for b in range(blocks.shape[1]):
            col, row = np.floor(uv[:, b, 0]).astype(int), np.floor(uv[:, b, 1]).astype(int)
            inside = (uvw[:, b, 2] > 0) & (col >= 0) & (col < side) & (row >= 0) & (row < side)
            patch = row * side + col
            t = t_index[inside]
            out[t, c, patch[inside], b] = 1.0
            out[t, c, patch[inside], len(BLOCK_ORDER) + 2 * b] = uv[inside, b, 0] - col[inside]
            out[t, c, patch[inside], len(BLOCK_ORDER) + 2 * b + 1] = uv[inside, b, 1] - row[inside]
    return out.reshape(len(blocks), len(cams) * side * side, PATCH_AUX_DIM)


def aux_targets(blocks: np.ndarray, table_height: float, tool_yaw: np.ndarray) -> np.ndarray:
    """(T, blocks, 7) poses [x, y, z, qw, qx, qy, qz] and (T,) tool yaw -> (T, AUX_DIM) float32 auxiliary
    targets."""
    position = blocks[..., :3] - AUX_CENTRE - np.array([0.0, 0.0, table_height])
    qw, qz = blocks[..., 3], blocks[..., 6]
    yaw = 2.0 * np.arctan2(qz, qw)   # blocks stay upright on the table and in the gripper
    turn = yaw - np.asarray(tool_yaw, dtype=np.float64)[:, None]
    features = np.concatenate([position / AUX_SCALE, *(f(4 * a)[..., None] for a in (yaw, turn)
                                                       for f in (np.sin, np.cos))], -1)
    return features.reshape(len(blocks), AUX_DIM).astype(np.float32)


@dataclass(frozen=True)
class Sample:
    """One training item: the token sequence and, when the episode has ground truth, one row of auxiliary
    targets per own (non-prompt) timestep, in order."""
    sequence: TokenSequence
    aux: np.ndarray | None = None        # (own timesteps, AUX_DIM) float32
    patch_aux: np.ndarray | None = None  # (sequence.num_patches, PATCH_AUX_DIM) float32, prompt patches included


@dataclass(frozen=True)
class DatasetConfig:
    context: int = 1024            # tokens per training sequence, prompt included (Gato: 1024), >= 1
    prompt_prob: float = 0.25      # share of sequences that get a prompt (Gato: 0.25), in [0, 1]
    prompt_fraction: float = 0.5   # at most this share of the context goes to the prompt, in (0, 1)
    seed: int = 0                  # seeds the per-item randomness (prompt choice), >= 0
    policy_share: float = 0.0      # windows of policy-driven (DAgger) episodes are repeated until they are about this
                                   # share of the dataset (0: every window once; they are few beside the demos, and
                                   # they hold the states the policy fails in), in [0, 1)

    def __post_init__(self):
        if self.context < 1:
            raise ValueError(f'DatasetConfig.context must be >= 1, got {self.context}')
        if not 0.0 <= self.prompt_prob <= 1.0:
            raise ValueError(f'DatasetConfig.prompt_prob must be in [0, 1], got {self.prompt_prob}')
        if not 0.0 < self.prompt_fraction < 1.0:
            raise ValueError(f'DatasetConfig.prompt_fraction must be in (0, 1), got {self.prompt_fraction}')
        if self.seed < 0:
            raise ValueError(f'DatasetConfig.seed must be >= 0, got {self.seed}')
        if not 0.0 <= self.policy_share < 1.0:
            raise ValueError(f'DatasetConfig.policy_share must be in [0, 1), got {self.policy_share}')


class EpisodeTokens:
    """One episode, tokenized lazily per timestep (patches are 4x the size of the uint8 images)."""

    def __init__(self, episode: Episode):
        self.episode = episode
        observer = observer_for(episode.info.robot)
        profile, info = observer.profile, episode.info
        if (info.joint_names, info.finger_joint_names) != (profile.joint_names, profile.gripper_joint_names):
            raise ValueError(f'episode seed {info.seed}: joints {info.joint_names} + fingers {info.finger_joint_names} '
                             f"differ from robot profile '{profile.name}': {profile.joint_names} + "
                             f'{profile.gripper_joint_names}')
        # Forward kinematics of the whole episode once; observation(t) then only assembles (Observer.observe).
        self.gripper, self.tool_pos, self.tool_yaw = observer.proprio(episode.q, episode.finger_q)
        self.aux = None if episode.blocks is None else aux_targets(episode.blocks, profile.table_height, self.tool_yaw)
        size = next(iter(episode.images.values())).shape[1] if episode.images else 0
        self.patch_aux = (None if episode.blocks is None or not size
                          else patch_targets(episode.blocks, episode.q, info, size))
        self.tokens_per_timestep = len(self.timestep(0))

    def __len__(self) -> int:
        return len(self.episode)

    def observation(self, t: int) -> dict:
        ep = self.episode
        return build_observation({cam: frames[t] for cam, frames in ep.images.items()}, ep.q[t],
                                 float(self.gripper[t]), self.tool_pos[t], float(self.tool_yaw[t]))

    def timestep(self, t: int) -> TokenSequence:
        return tokenize_timestep(self.observation(t), self.episode.actions[t])

    def timesteps(self, indices) -> TokenSequence:
        return TokenSequence.concat([self.timestep(int(t)) for t in indices])

    def steps_fitting(self, tokens: int) -> int:
        return tokens // self.tokens_per_timestep


def validation_split(episodes: list[Episode], fraction: float) -> tuple[list[Episode], list[Episode]]:
    """(training, held-out) episodes: round(fraction x count) of them, at least one when fraction > 0 and there
    are two or more, are held out for validation. Which ones depends on each episode's name only (CRC-32 order), so
    an episode stays on its side when others are added, and a rerun splits the same way."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f'validation fraction must be in [0, 1), got {fraction}')
    n = 0 if fraction == 0 or len(episodes) < 2 else max(1, round(fraction * len(episodes)))
    order = sorted(range(len(episodes)), key=lambda i: (zlib.crc32(episodes[i].name.encode()), i))
    held = set(order[:n])
    return ([ep for i, ep in enumerate(episodes) if i not in held], [ep for i, ep in enumerate(episodes) if i in held])


def as_prompt(seq: TokenSequence) -> TokenSequence:
    """The same tokens with the loss switched off: a prompt conditions, it is not a target."""
    return dataclasses.replace(seq, loss_mask=np.zeros_like(seq.loss_mask))


def prompt_indices(length: int, n: int, from_end: bool, rng: np.random.Generator) -> range:
    """n consecutive timesteps of an episode of `length`: its last n, or a window at a uniform start."""
    n = min(n, length)
    start = length - n if from_end else int(rng.integers(0, length - n + 1))
    return range(start, start + n)


def demonstration_prompt(episode: Episode, tokens: int) -> TokenSequence:
    """Evaluation prompt: the last timesteps of a (successful) demonstration that fit in `tokens`."""
    ep = EpisodeTokens(episode)
    n = ep.steps_fitting(tokens)
    if n < 1:
        raise ValueError(f'demonstration_prompt: {tokens} tokens hold no timestep '
                         f'({ep.tokens_per_timestep} tokens each)')
    return as_prompt(ep.timesteps(prompt_indices(len(ep), n, True, None)))


class EpisodeDataset(torch.utils.data.Dataset):
    """Map-style dataset of training windows. Item i is the i-th (episode, start) window; the key may also
    be (epoch, i) so the prompt draw differs between epochs while staying reproducible."""

    def __init__(self, episodes: list[Episode], config: DatasetConfig = DatasetConfig()):
        if not episodes:
            raise ValueError('EpisodeDataset: no episodes (is the data directory empty, or all episodes failed?)')
        self.config = config
        self.episodes = [EpisodeTokens(ep) for ep in episodes]
        too_long = [e for e in self.episodes if e.tokens_per_timestep > config.context]
        if too_long:
            raise ValueError(f'DatasetConfig.context={config.context} is smaller than one timestep '
                             f'({too_long[0].tokens_per_timestep} tokens for robot {too_long[0].episode.info.robot})')
        self.has_aux = all(ep.aux is not None and ep.patch_aux is not None for ep in self.episodes)  # ground truth
        groups: dict[tuple, list[int]] = {}
        for i, ep in enumerate(self.episodes):
            groups.setdefault((ep.episode.info.robot, ep.episode.info.task), []).append(i)
        self.peers = [[j for j in groups[(ep.episode.info.robot, ep.episode.info.task)] if j != i]
                      for i, ep in enumerate(self.episodes)]
        windows = [(i, start) for i, ep in enumerate(self.episodes)
                   for start in range(max(1, len(ep) - ep.steps_fitting(config.context) + 1))]
        self.policy_repeats = self._policy_repeats(windows, config.policy_share)
        self.windows = [w for w in windows
                        for _ in range(self.policy_repeats if self.episodes[w[0]].episode.info.driver == 'policy'
                                       else 1)]

    def _policy_repeats(self, windows, share: float) -> int:
        """How often each policy-driven window appears so that they make up about `share` of all windows (>= 1)."""
        policy = sum(self.episodes[i].episode.info.driver == 'policy' for i, _ in windows)
        if not share or not policy or policy == len(windows):
            return 1
        return max(1, round(share * (len(windows) - policy) / ((1.0 - share) * policy)))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, key) -> Sample:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        rng = np.random.default_rng([self.config.seed, epoch, index])
        i, start = self.windows[index]
        ep, budget, parts = self.episodes[i], self.config.context, []   # parts: (episode, timestep indices)
        if self.peers[i] and rng.random() < self.config.prompt_prob:
            peer = self.episodes[self.peers[i][rng.integers(len(self.peers[i]))]]
            n = min(peer.steps_fitting(int(budget * self.config.prompt_fraction)),
                    peer.steps_fitting(budget - ep.tokens_per_timestep))  # leave room for one own timestep
            if n > 0:
                parts.append((peer, prompt_indices(len(peer), n, rng.random() < 0.5, rng)))
                budget -= n * peer.tokens_per_timestep
        stop = min(len(ep), start + max(1, ep.steps_fitting(budget)))
        parts.append((ep, range(start, stop)))
        sequences = [as_prompt(e.timesteps(steps)) for e, steps in parts[:-1]] + [ep.timesteps(parts[-1][1])]
        patch_aux = (np.concatenate([e.patch_aux[list(steps)].reshape(-1, PATCH_AUX_DIM) for e, steps in parts])
                     if self.has_aux else None)
        return Sample(TokenSequence.concat(sequences), ep.aux[start:stop] if self.has_aux else None, patch_aux)


def collate(items: list[Sample | TokenSequence]) -> dict[str, torch.Tensor]:
    """Right-pads a batch to its longest sequence (padding: token 0, no position, no loss). Patches are
    concatenated in the row-major order of their placeholders over (batch, time), as Gato.forward expects;
    so are the auxiliary targets ('aux', when every item has them) over the own timesteps' separators."""
    samples = [item if isinstance(item, Sample) else Sample(item) for item in items]
    sequences = [s.sequence for s in samples]
    length = max(len(s) for s in sequences)
    batch = len(sequences)
    tokens = torch.zeros(batch, length, dtype=torch.long)
    local_pos = torch.full((batch, length), -1, dtype=torch.long)
    loss_mask = torch.zeros(batch, length, dtype=torch.bool)
    for b, s in enumerate(sequences):
        tokens[b, :len(s)] = torch.from_numpy(s.tokens)
        local_pos[b, :len(s)] = torch.from_numpy(s.local_pos)
        loss_mask[b, :len(s)] = torch.from_numpy(s.loss_mask)
    batch = {'tokens': tokens, 'local_pos': local_pos, 'loss_mask': loss_mask,
             'patches': torch.from_numpy(np.concatenate([s.patches for s in sequences])),
             'patch_rows': torch.from_numpy(np.concatenate([s.patch_rows for s in sequences])),
             'patch_cols': torch.from_numpy(np.concatenate([s.patch_cols for s in sequences]))}
    if all(s.aux is not None for s in samples):
        batch['aux'] = torch.from_numpy(np.concatenate([s.aux for s in samples]))
    if all(s.patch_aux is not None for s in samples):
        batch['patch_aux'] = torch.from_numpy(np.concatenate([s.patch_aux for s in samples]))
    return batch
