"""Behaviour cloning of a Gato model: next-token cross-entropy on the Gato loss mask.

The loss (BehaviourCloningLoss) has three options, each measured in docs/learning.md:
- action_head: action targets are scored over the 1024 action bins only, as the engine does at inference;
- label_sigma: HL-Gauss targets -- the one-hot bin is replaced by a Gaussian of that width (action units)
  integrated over the ordered bins, so a near miss costs less than a far one;
- aux_weight: an auxiliary regression of the blocks' poses from the hidden state at each timestep's '|'
  (dataset.aux_targets);
- patch_aux_weight: dense auxiliary targets on every image patch's hidden state -- which block centres project
  into the patch and where (dataset.patch_targets) -- so the image tokens learn to say what they show.
The auxiliary heads exist only in training (kept in training_state.pt); inference never runs them.

AdamW with linear warm-up and cosine decay (Gato's recipe: betas 0.9/0.95, weight decay 0.1, global
gradient clip 1.0, final rate 10x below the peak). Under torchrun (WORLD_SIZE set) the model is wrapped
in DistributedDataParallel and every rank reads its own shard of the windows (DistributedSampler); only
rank 0 writes checkpoints. Checkpoints are directories `step-NNNNNNN/` holding the model
(gato_ros.core.checkpoint: safetensors + config.json) and `training_state.pt` (optimizer, step), so
`resume=True` continues exactly where the latest one stopped.

With a held-out dataset (episodes the training never sees), every checkpoint also scores `val_batches` fixed
batches of it: `val_loss` (same terms as the training loss) in that step's line of train_log.jsonl. After each
checkpoint, `loss.png` in the output directory plots the whole log (training and validation loss per step); with
the tensorboard package installed the same scalars also go to `tensorboard/` there.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint
from ..data.dataset import AUX_DIM, PATCH_AUX_DIM, collate
from ..tokenizer import CONTINUOUS_OFFSET, NUM_BINS, PATCH_PLACEHOLDER, SEPARATOR_ID
from .schedule import learning_rate

TRAINING_STATE = 'training_state.pt'


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20000            # optimizer steps in total, >= 1
    batch_size: int = 16          # sequences per step and process (DDP multiplies by the world size), >= 1
    lr: float = 1e-4              # peak learning rate (Gato: 1e-4), > 0
    min_lr_ratio: float = 0.1     # final rate / peak rate (Gato: 0.1), in [0, 1]
    warmup_steps: int = 1000      # linear warm-up steps, >= 0
    weight_decay: float = 0.1     # AdamW decoupled weight decay on matrices (Gato: 0.1), >= 0
    beta1: float = 0.9            # AdamW beta1, in [0, 1)
    beta2: float = 0.95           # AdamW beta2, in [0, 1)
    grad_clip: float = 1.0        # global gradient-norm clip, > 0
    checkpoint_every: int = 1000  # steps between checkpoints (one is also written at the end), >= 1
    keep_checkpoints: int = 2     # most recent checkpoints kept on disk, >= 1
    log_every: int = 10           # steps between lines in train_log.jsonl, >= 1
    seed: int = 0                 # model initialisation and data order, >= 0
    num_workers: int = 0          # DataLoader worker processes (0: tokenize in the training process), >= 0
    action_head: bool = True      # score action targets over the 1024 action bins only (as at inference)
    label_sigma: float = 0.0      # HL-Gauss target width in action units (0: one-hot), >= 0
    aux_weight: float = 0.0       # weight of the auxiliary block-pose regression (0: off), >= 0
    patch_aux_weight: float = 0.0  # weight of the dense per-patch block targets (0: off), >= 0
    bf16: bool = False            # bfloat16 autocast (CUDA always uses it; on CPU it needs AVX512-BF16/AMX)
    val_batches: int = 4          # held-out batches scored at every checkpoint (when there is a validation set), >= 1

    def __post_init__(self):
        at_least = lambda lo: (lambda v: v >= lo, f'>= {lo}')  # noqa: E731
        positive = (lambda v: v > 0, '> 0')
        unit = (lambda v: 0 <= v < 1, 'in [0, 1)')
        checks = {'steps': at_least(1), 'batch_size': at_least(1), 'lr': positive,
                  'min_lr_ratio': (lambda v: 0 <= v <= 1, 'in [0, 1]'), 'warmup_steps': at_least(0),
                  'weight_decay': at_least(0), 'beta1': unit, 'beta2': unit, 'grad_clip': positive,
                  'checkpoint_every': at_least(1), 'keep_checkpoints': at_least(1), 'log_every': at_least(1),
                  'seed': at_least(0), 'num_workers': at_least(0), 'label_sigma': at_least(0),
                  'aux_weight': at_least(0), 'patch_aux_weight': at_least(0), 'val_batches': at_least(1)}
        for name, (ok, allowed) in checks.items():
            if not ok(getattr(self, name)):
                raise ValueError(f'TrainConfig.{name} must be {allowed}, got {getattr(self, name)!r}')


def hl_gauss_targets(sigma: float, bins: int = NUM_BINS) -> torch.Tensor:
    """(bins, bins) soft targets: row b is a Gaussian of width sigma (action units) centred on bin b's centre,
    integrated over the bins' edges on [-1, 1] and renormalised (mass past the ends goes to the end bins)."""
    edges = torch.linspace(-1.0, 1.0, bins + 1, dtype=torch.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    cdf = torch.special.ndtr((edges[None, :] - centres[:, None]) / sigma)          # (bins, bins + 1)
    cdf[:, 0], cdf[:, -1] = 0.0, 1.0
    return (cdf[:, 1:] - cdf[:, :-1]).float()


class BehaviourCloningLoss(nn.Module):
    """Model + loss in one forward, so DDP sees a single forward call. The output head runs only on the
    positions whose NEXT token is a target (text/action), which saves ~90% of the head and its memory.
    `last` holds the detached loss terms of the latest call, for logging."""

    def __init__(self, model: nn.Module, action_head: bool = False, label_sigma: float = 0.0,
                 aux_weight: float = 0.0, patch_aux_weight: float = 0.0):
        super().__init__()
        self.model, self.action_head = model, action_head
        self.aux_weight, self.patch_aux_weight = aux_weight, patch_aux_weight
        if label_sigma > 0 and not action_head:
            raise ValueError('BehaviourCloningLoss: label_sigma needs action_head=True (targets over the action bins)')
        self.register_buffer('soft', hl_gauss_targets(label_sigma) if label_sigma > 0 else None, persistent=False)
        self.aux_head = nn.Linear(model.config.d_model, AUX_DIM) if aux_weight > 0 else None
        self.patch_head = nn.Linear(model.config.d_model, PATCH_AUX_DIM) if patch_aux_weight > 0 else None
        self.last: dict[str, float] = {}

    def heads(self) -> dict:
        """The auxiliary heads' weights, for training_state.pt."""
        return {name: getattr(self, name).state_dict() for name in ('aux_head', 'patch_head')
                if getattr(self, name) is not None}

    def forward(self, tokens, local_pos, loss_mask, patches=None, patch_rows=None, patch_cols=None, aux=None,
                patch_aux=None):
        x = self.model.trunk(self.model.embed(tokens, local_pos, patches, patch_rows, patch_cols))
        targets = loss_mask[:, 1:] & (tokens[:, 1:] >= 0)
        h, target = x[:, :-1][targets], tokens[:, 1:][targets]                     # (N, d), (N,)
        if self.action_head:
            is_bin = (target >= CONTINUOUS_OFFSET) & (target < CONTINUOUS_OFFSET + NUM_BINS)
            rows = slice(CONTINUOUS_OFFSET, CONTINUOUS_OFFSET + NUM_BINS)
            log_p = F.log_softmax(self.model.head(h[is_bin], rows).float(), dim=-1)  # (N_act, bins)
            bins = target[is_bin] - CONTINUOUS_OFFSET
            terms = -(self.soft[bins] * log_p).sum(-1) if self.soft is not None else F.nll_loss(
                log_p, bins, reduction='none')
            if (~is_bin).any():   # text targets (instructions) keep the whole vocabulary
                other = F.cross_entropy(self.model.head(h[~is_bin]).float(), target[~is_bin], reduction='none')
                terms = torch.cat([terms, other])
            loss = terms.mean()
        else:
            loss = F.cross_entropy(self.model.head(h).float(), target)
        self.last = {'bc': loss.detach()}
        if self.aux_head is not None:
            if aux is None:
                raise ValueError('aux_weight > 0 but the batch has no auxiliary targets (episodes recorded without '
                                 'block poses): record them again or train with aux_weight 0')
            # The own timesteps' separators: '|' whose next token is a target (prompt separators are not).
            own_sep = (tokens[:, :-1] == SEPARATOR_ID) & targets
            pred = self.aux_head(self.model.ln_f(x[:, :-1][own_sep])).float()      # (N_sep, AUX_DIM)
            aux_loss = F.mse_loss(pred, aux.to(pred.dtype))
            self.last['aux'] = aux_loss.detach()
            loss = loss + self.aux_weight * aux_loss
        if self.patch_head is not None:
            if patch_aux is None:
                raise ValueError('patch_aux_weight > 0 but the batch has no per-patch targets (episodes recorded '
                                 'without block poses)')
            pred = self.patch_head(self.model.ln_f(x[tokens == PATCH_PLACEHOLDER])).float()   # (P, PATCH_AUX_DIM)
            blocks = PATCH_AUX_DIM // 3
            present = patch_aux[:, :blocks]
            presence = F.binary_cross_entropy_with_logits(pred[:, :blocks], present)
            where = present.repeat_interleave(2, dim=1)                                  # (P, 2 * blocks)
            offset = (((pred[:, blocks:] - patch_aux[:, blocks:]) ** 2) * where).sum() / where.sum().clamp_min(1.0)
            self.last['patch'] = (presence + offset).detach()
            loss = loss + self.patch_aux_weight * (presence + offset)
        return loss


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: str) -> DistContext:
    """torchrun sets WORLD_SIZE/RANK/LOCAL_RANK; without them this is a single process."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return DistContext()
    backend = 'nccl' if device.startswith('cuda') else 'gloo'
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank=dist.get_rank(), world_size=world, local_rank=int(os.environ.get('LOCAL_RANK', '0')))


def checkpoint_dirs(out_dir) -> list[Path]:
    """Complete checkpoints in out_dir, oldest first."""
    return sorted(p.parent for p in Path(out_dir).glob(f'step-*/{TRAINING_STATE}'))


def latest_checkpoint(path) -> Path:
    """`path` itself when it is a checkpoint directory, else the newest checkpoint inside it."""
    path = Path(path)
    if (path / 'config.json').is_file():
        return path
    found = checkpoint_dirs(path)
    if not found:
        raise FileNotFoundError(f'{path}: no checkpoint (config.json) and no step-*/ checkpoint inside')
    return found[-1]


def optimizer_for(model: nn.Module, cfg: TrainConfig, fused: bool = True) -> torch.optim.AdamW:
    """AdamW over `model`'s parameters; fused (one kernel for all of them) is ~5x the foreach step on CPU,
    where the 33025 x d embedding table makes the update a large share of a small model's step."""
    # Decay matrices and embeddings; not biases and norm gains (the nanoGPT split).
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{'params': decay, 'weight_decay': cfg.weight_decay},
                              {'params': no_decay, 'weight_decay': 0.0}],
                             lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), fused=fused, foreach=not fused)


def _batches(sampler: DistributedSampler, batch_size: int, start_step: int):
    """Lists of (epoch, window index) forever, starting at start_step's batch. The epoch travels with the
    index so the dataset's per-item randomness (prompt choice) changes between epochs yet is reproducible."""
    per_epoch = len(sampler) // batch_size
    step = start_step
    while True:
        epoch, offset = divmod(step, per_epoch)
        sampler.set_epoch(epoch)
        indices = list(sampler)
        for b in range(offset, per_epoch):
            yield [(epoch, i) for i in indices[b * batch_size:(b + 1) * batch_size]]
        step = (epoch + 1) * per_epoch


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def validation_loss(loss_module: BehaviourCloningLoss, dataset, cfg: TrainConfig, device: torch.device,
                    autocast) -> dict[str, float]:
    """Mean loss terms over up to val_batches x batch_size held-out windows, spread evenly over the dataset and
    the same at every call (item keys (0, i): the prompt draw is fixed too)."""
    count = min(len(dataset), cfg.val_batches * cfg.batch_size)
    indices = sorted({round(i * (len(dataset) - 1) / max(1, count - 1)) for i in range(count)})
    loss_module.eval()
    sums: dict[str, float] = {}
    try:
        for start in range(0, len(indices), cfg.batch_size):
            chunk = indices[start:start + cfg.batch_size]
            with autocast:
                loss = loss_module(**_to_device(collate([dataset[(0, i)] for i in chunk]), device))
            for key, value in {'loss': loss, **{f'loss_{k}': v for k, v in loss_module.last.items()}}.items():
                sums[key] = sums.get(key, 0.0) + float(value) * len(chunk)
    finally:
        loss_module.train()
    return {f'val_{key}': total / len(indices) for key, total in sums.items()}


def tensorboard_writer(out_dir: Path):
    """A TensorBoard SummaryWriter on out_dir/tensorboard when the tensorboard package is installed, else None
    (train_log.jsonl and loss.png are always written; TensorBoard is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out_dir / 'tensorboard'))


def plot_losses(log_path: Path, png_path: Path) -> None:
    """loss.png: training loss (each logged step) and validation loss (each checkpoint) of a train_log.jsonl."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
    fig = Figure(figsize=(7, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot([r['step'] for r in rows], [r['loss'] for r in rows], label='training loss', linewidth=1)
    val = [r for r in rows if 'val_loss' in r]
    if val:
        ax.plot([r['step'] for r in val], [r['val_loss'] for r in val], 'o-', label='validation loss (held out)')
    ax.set_xlabel('step')
    ax.set_ylabel('loss')
    ax.set_yscale('log')
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(Path(log_path).parent.name)
    fig.tight_layout()
    fig.savefig(png_path)


def train(model: nn.Module, dataset, cfg: TrainConfig, out_dir, checkpoint_config: dict, device: str = 'cpu',
          resume: bool = False, progress: bool = True, val_dataset=None) -> list[float]:
    """Trains `model` in place on `dataset` (map-style, items are TokenSequences) and returns the per-step
    losses of this run (this rank's). `checkpoint_config` is written into every checkpoint's config.json
    (model/tokenizer/robots/data); the trainer adds a 'train' section (config, step). `val_dataset` (held-out
    windows, optional) is scored at every checkpoint."""
    ctx = init_distributed(device)
    if device.startswith('cuda') and ctx.world_size > 1:
        device = f'cuda:{ctx.local_rank}'
    dev = torch.device(device)
    if dev.type == 'cuda':
        torch.cuda.set_device(dev)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)

    loss_fn = BehaviourCloningLoss(model, cfg.action_head, cfg.label_sigma, cfg.aux_weight,
                                   cfg.patch_aux_weight).to(dev)
    optimizer = optimizer_for(loss_fn, cfg)
    start_step = 0
    if resume and checkpoint_dirs(out_dir):
        ckpt = checkpoint_dirs(out_dir)[-1]
        state_dict, _ = load_checkpoint(ckpt)
        model.load_state_dict(state_dict)
        state = torch.load(ckpt / TRAINING_STATE, map_location=dev, weights_only=True)
        optimizer.load_state_dict(state['optimizer'])
        for name, head_state in state.get('heads', {}).items():
            getattr(loss_fn, name).load_state_dict(head_state)
        start_step = int(state['step'])
        if ctx.is_main:
            print(f'resuming from {ckpt} at step {start_step}')

    loss_module = loss_fn
    if ctx.world_size > 1:
        loss_fn = DistributedDataParallel(loss_fn, device_ids=[dev.index] if dev.type == 'cuda' else None)

    sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    if len(sampler) < cfg.batch_size:
        raise ValueError(f'dataset has {len(dataset)} training windows ({len(sampler)} per process), fewer than '
                         f'batch_size={cfg.batch_size}: record more episodes or lower --batch-size')
    loader = DataLoader(dataset, batch_sampler=_batches(sampler, cfg.batch_size, start_step), collate_fn=collate,
                        num_workers=cfg.num_workers, pin_memory=dev.type == 'cuda')
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=dev.type == 'cuda' or cfg.bf16)

    def save(step: int) -> None:
        if not ctx.is_main:
            return
        target = out_dir / f'step-{step:07d}'
        config = dict(checkpoint_config, train={**asdict(cfg), 'step': step, 'world_size': ctx.world_size})
        save_checkpoint(target, {k: v.detach().cpu() for k, v in model.state_dict().items()}, config)
        tmp = target / f'.{TRAINING_STATE}.tmp'   # written last and renamed: its presence marks a complete checkpoint
        torch.save({'optimizer': optimizer.state_dict(), 'step': step, 'heads': loss_module.heads()}, tmp)
        os.replace(tmp, target / TRAINING_STATE)
        for old in checkpoint_dirs(out_dir)[:-cfg.keep_checkpoints]:
            shutil.rmtree(old)
        plot_losses(out_dir / 'train_log.jsonl', out_dir / 'loss.png')

    losses: list[float] = []
    bar = tqdm(total=cfg.steps, initial=start_step, desc='train', disable=not (progress and ctx.is_main),
               dynamic_ncols=True)
    log = open(out_dir / 'train_log.jsonl', 'a') if ctx.is_main else None
    board = tensorboard_writer(out_dir) if ctx.is_main else None
    t0, timesteps = time.perf_counter(), 0
    model.train()
    try:
        for step, batch in zip(range(start_step, cfg.steps), loader):
            lr = learning_rate(step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr_ratio)
            for group in optimizer.param_groups:
                group['lr'] = lr
            timesteps += int(batch['loss_mask'][:, 1:].logical_and(batch['tokens'][:, :-1] == SEPARATOR_ID).sum())
            with autocast:
                loss = loss_fn(**_to_device(batch, dev))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(loss_module.parameters(), cfg.grad_clip)
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f'{losses[-1]:.4f}', lr=f'{lr:.2e}')
            done = step + 1
            checkpoint = done % cfg.checkpoint_every == 0 or done == cfg.steps
            if log is not None and (done % cfg.log_every == 0 or checkpoint):
                terms = {f'loss_{k}': float(v) for k, v in loss_module.last.items()}
                val = (validation_loss(loss_module, val_dataset, cfg, dev, autocast)
                       if checkpoint and val_dataset is not None else {})
                record = {'step': done, 'loss': losses[-1], **terms, **val, 'lr': lr,
                          'grad_norm': float(grad_norm), 'seconds': round(time.perf_counter() - t0, 3),
                          'timesteps_per_s': round(timesteps / (time.perf_counter() - t0), 2)}
                log.write(json.dumps(record) + '\n')
                log.flush()
                if board is not None:
                    for name, value in record.items():
                        if name != 'step':
                            board.add_scalar(name, value, done)
            if checkpoint:
                save(done)
    finally:
        bar.close()
        if log is not None:
            log.close()
        if board is not None:
            board.close()
    if ctx.world_size > 1:
        dist.barrier()
    return losses

