"""`gato-ros train --data DIR --preset P --out DIR [--steps N] [--resume] ...`: behaviour cloning of a Gato
checkpoint from recorded episodes. Multi-GPU: `torchrun --nproc_per_node K -m gato_ros.cli train ...` (DDP).

A share of the episodes (--val-fraction) is held out: the trainer scores it at every checkpoint (val_loss in
train_log.jsonl, loss.png). `--resume` refuses to continue on other episodes than the checkpoint was trained on
(the list of episode names in its config; seeds for checkpoints from before that list) unless
--allow-data-change; resuming keeps the checkpoint's validation share (0 for checkpoints from before it)."""

import argparse
import collections
import dataclasses
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import torch

from gato_ros.commands import arguments
from gato_ros.core.data import load_episodes
from gato_ros.core.data.dataset import DatasetConfig, EpisodeDataset, validation_split
from gato_ros.core.data.relabel import relabelled
from gato_ros.core.model import ACTION_INPUTS, PRESETS, Gato, GatoConfig, preset
from gato_ros.core.policy_spec import DECODINGS, PolicySpec
from gato_ros.core.robots import load_profile
from gato_ros.core.tokenizer.sequence import tokenizer_config
from gato_ros.core.checkpoint import load_checkpoint
from gato_ros.core.train import TrainConfig, latest_checkpoint, train
from gato_ros.core.train.trainer import checkpoint_dirs

VAL_FRACTION = 0.05   # default share of held-out episodes of a new run


def add_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    parser.add_argument('--data', required=True, type=Path, nargs='+',
                        help='directories of recorded episodes (*.mcap): demonstrations and DAgger rounds')
    parser.add_argument('--preset', default='tiny', choices=sorted(PRESETS), help='model preset (default tiny)')
    parser.add_argument('--out', required=True, type=Path, help='checkpoint directory (step-NNNNNNN/ inside)')
    parser.add_argument('--steps', type=arguments.positive_int, default=defaults.steps,
                        help=f'optimizer steps ({defaults.steps})')
    parser.add_argument('--batch-size', type=arguments.positive_int, default=defaults.batch_size,
                        help=f'sequences per step and process ({defaults.batch_size})')
    parser.add_argument('--lr', type=float, default=defaults.lr, help=f'peak learning rate ({defaults.lr})')
    parser.add_argument('--warmup', type=int, default=None,
                        help=f'linear warm-up steps (default: {defaults.warmup_steps} or a tenth of --steps if less)')
    parser.add_argument('--weight-decay', type=float, default=defaults.weight_decay)
    parser.add_argument('--context', type=int, default=None,
                        help='tokens per training sequence (default: the preset\'s context, 1024)')
    parser.add_argument('--attention-window', type=arguments.positive_int, default=None,
                        help='sliding attention window (tokens): a token sees itself and the window - 1 before it, '
                             'and the engine runs a constant-time ring-buffer cache (default: full causal attention)')
    parser.add_argument('--action-inputs', choices=ACTION_INPUTS, default=None,
                        help="what an action token feeds forward: 'value' (its bin, Gato) or 'slot' (its index in "
                             "the action vector: closed-loop decoding then equals teacher forcing); default: "
                             "the preset's, 'value'")
    parser.add_argument('--prompt-prob', type=float, default=DatasetConfig().prompt_prob,
                        help='share of sequences with a demonstration prompt (Gato: 0.25)')
    parser.add_argument('--dagger-share', type=arguments.fraction, default=DatasetConfig().policy_share,
                        help='repeat the DAgger (policy-driven) episodes\' timesteps until they are about this share '
                             'of the training windows, in [0, 1) (default 0: each once)')
    parser.add_argument('--label-sigma', type=float, default=defaults.label_sigma,
                        help=f'HL-Gauss action target width in action units, 0 = one-hot ({defaults.label_sigma})')
    parser.add_argument('--aux-weight', type=float, default=defaults.aux_weight,
                        help=f'weight of the auxiliary block-pose regression, 0 = off ({defaults.aux_weight})')
    parser.add_argument('--patch-aux-weight', type=float, default=defaults.patch_aux_weight,
                        help=f'weight of the dense per-patch block targets, 0 = off ({defaults.patch_aux_weight})')
    parser.add_argument('--full-head', action='store_true',
                        help='score action targets over the whole vocabulary (default: the 1024 action bins)')
    parser.add_argument('--decoding', choices=DECODINGS, default=None,
                        help="action decoding written into the checkpoint's PolicySpec (default: 'mean' with "
                             "--label-sigma > 0, else 'argmax')")
    parser.add_argument('--bf16', action='store_true', help='bfloat16 autocast on CPU (CUDA always uses it)')
    parser.add_argument('--checkpoint-every', type=arguments.positive_int, default=defaults.checkpoint_every)
    parser.add_argument('--seed', type=int, default=defaults.seed, help='initialisation and data order seed')
    parser.add_argument('--workers', type=int, default=defaults.num_workers, help='DataLoader worker processes')
    parser.add_argument('--threads', type=arguments.positive_int, default=None,
                        help='torch threads (default: torch decides)')
    parser.add_argument('--device', type=arguments.torch_device,
                        default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='cpu, cuda or cuda:N (default: cuda when available)')
    parser.add_argument('--include-failures', action='store_true',
                        help='also train on episodes where the expert failed (default: successful ones only)')
    parser.add_argument('--relabel', action='store_true',
                        help="replace every recorded action by the scripted expert's action at that recorded state "
                             '(one consistent expert over demonstrations and DAgger rollouts; needs block poses)')
    parser.add_argument('--val-fraction', type=arguments.fraction, default=None,
                        help=f'share of the episodes held out for validation, in [0, 1) (default {VAL_FRACTION}; '
                             'with --resume, the checkpoint\'s)')
    parser.add_argument('--resume', action='store_true', help='continue from the newest checkpoint in --out')
    parser.add_argument('--allow-data-change', action='store_true',
                        help='--resume even when the training episodes differ from the checkpoint\'s')
    parser.add_argument('--init', type=Path, default=None,
                        help='start from these weights (a checkpoint of the same shape), e.g. the previous '
                             'DAgger round')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def git_revision() -> str:
    """HEAD of the source tree this code runs from, '+dirty' with uncommitted changes; 'unknown' outside git."""
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=root, capture_output=True, text=True, check=True)
        dirty = subprocess.run(['git', 'diff-index', '--quiet', 'HEAD', '--'], cwd=root, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        return 'unknown'
    return rev.stdout.strip() + ('+dirty' if dirty.returncode else '')


def training_command(args: argparse.Namespace) -> str:
    """The command that reproduces this run, every option spelled out (torchrun prefix under DDP)."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    prefix = f'torchrun --nproc_per_node {world} -m gato_ros.cli' if world > 1 else 'gato-ros'
    return arguments.command_line('train', args, prefix)


def robot_section(robots: list[str]) -> dict:
    """Joint specs of every robot in the data; the first one is also given as the plain single-robot form."""
    profiles = {name: load_profile(name) for name in robots}
    first = profiles[robots[0]]
    return {'name': first.name, 'joint_names': list(first.joint_names),
            'profiles': {name: list(p.joint_names) for name, p in profiles.items()},
            'specs': {name: {'joint_names': list(p.joint_names), 'lower': p.lower.tolist(),
                             'upper': p.upper.tolist(), 'velocity': p.velocity.tolist(),
                             'gripper_joint_names': list(p.gripper_joint_names)} for name, p in profiles.items()}}


def check_same_episodes(previous: dict, checkpoint: Path, episodes) -> None:
    """SystemExit (one line) when `episodes` are not the ones the checkpoint was trained on."""
    data = previous.get('data', {})
    if 'episode_names' in data:
        before, now = collections.Counter(data['episode_names']), collections.Counter(ep.name for ep in episodes)
        kind = 'episodes'
    else:   # checkpoints from before the episode list: their episodes' seeds
        before = collections.Counter(data.get('episode_seeds', []))
        now, kind = collections.Counter(ep.info.seed for ep in episodes), 'episode seeds'
    if before != now:
        raise SystemExit(f'--resume: {checkpoint} was trained on {sum(before.values())} {kind}, --data now gives '
                         f'{sum(now.values())} ({sum((before - now).values())} of them gone, '
                         f'{sum((now - before).values())} new); resume with the same --data and --val-fraction, '
                         'train into a new --out, or add --allow-data-change')


def data_sections(episodes, data_dirs: list[Path], dataset: EpisodeDataset, held_out,
                  relabel: bool) -> tuple[dict, dict]:
    """config.json's 'data' and 'stats'; held_out: (validation fraction, held-out episodes)."""
    infos = [ep.info for ep in episodes]
    images = episodes[0].images
    data = {'dirs': [str(d.resolve()) for d in data_dirs], 'episodes': len(episodes),
            'policy_driven_episodes': sum(i.driver == 'policy' for i in infos), 'relabelled': relabel,
            'episode_seeds': sorted(i.seed for i in infos), 'episode_names': sorted(ep.name for ep in episodes),
            'validation': {'fraction': held_out[0], 'episodes': len(held_out[1]),
                           'episode_names': sorted(ep.name for ep in held_out[1])},
            'cameras': list(infos[0].cameras),
            'image_size': int(next(iter(images.values())).shape[1]), 'control_hz': infos[0].control_hz,
            'dataset': dataclasses.asdict(dataset.config), 'policy_window_repeats': dataset.policy_repeats}
    actions = np.concatenate([ep.actions for ep in episodes])
    stats = {'episodes': len(episodes), 'timesteps': int(sum(len(ep) for ep in episodes)),
             'windows': len(dataset),
             'tasks': dict(collections.Counter(','.join(i.task) for i in infos)),
             'robots': dict(collections.Counter(i.robot for i in infos)),
             'tokens_per_timestep': {e.episode.info.robot: e.tokens_per_timestep for e in dataset.episodes},
             'action_mean': actions.mean(0).tolist(), 'action_std': actions.std(0).tolist()}
    return data, stats


def run(args: argparse.Namespace) -> int:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    model_config = preset(args.preset)
    if args.context is not None:
        model_config = dataclasses.replace(model_config, context=args.context)
    if args.attention_window is not None:
        model_config = dataclasses.replace(model_config, attention_window=args.attention_window)
    if args.action_inputs is not None:
        model_config = dataclasses.replace(model_config, action_inputs=args.action_inputs)
    episodes = [ep for d in args.data for ep in load_episodes(d, only_successful=not args.include_failures)]
    if not episodes:
        raise SystemExit(f"{', '.join(map(str, args.data))}: no usable episodes (record some with `gato-ros record`)")
    if len({(ep.info.cameras, ep.images[ep.info.cameras[0]].shape[1:]) for ep in episodes}) > 1:
        raise SystemExit(f'{args.data}: episodes differ in cameras or image size; train on one observation layout')
    if args.relabel:   # an episode without block poses: a ValueError naming it, one line (cli)
        episodes = [relabelled(ep) for ep in episodes]
    resumed = checkpoint_dirs(args.out)[-1] if args.resume and checkpoint_dirs(args.out) else None
    previous = json.loads((resumed / 'config.json').read_text()) if resumed else None   # config only, no weights
    val_fraction = (args.val_fraction if args.val_fraction is not None else VAL_FRACTION if previous is None
                    else previous.get('data', {}).get('validation', {}).get('fraction', 0.0))
    episodes, held_out = validation_split(episodes, val_fraction)
    if previous is not None and not args.allow_data_change:
        check_same_episodes(previous, resumed, episodes)
    dataset_config = DatasetConfig(context=model_config.context, prompt_prob=args.prompt_prob, seed=args.seed,
                                   policy_share=args.dagger_share)
    dataset = EpisodeDataset(episodes, dataset_config)
    # validation scores every held-out window once
    val_dataset = EpisodeDataset(held_out, dataclasses.replace(dataset_config, policy_share=0.0)) if held_out else None
    warmup = min(TrainConfig().warmup_steps, args.steps // 10) if args.warmup is None else args.warmup
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=warmup,
                               weight_decay=args.weight_decay, checkpoint_every=args.checkpoint_every,
                               seed=args.seed, num_workers=args.workers, action_head=not args.full_head,
                               label_sigma=args.label_sigma, aux_weight=args.aux_weight,
                               patch_aux_weight=args.patch_aux_weight, bf16=args.bf16)
    data, stats = data_sections(episodes, args.data, dataset, (val_fraction, held_out), args.relabel)
    robots = sorted({ep.info.robot for ep in episodes}, key=lambda r: (r != episodes[0].info.robot, r))
    decoding = args.decoding or ('mean' if args.label_sigma > 0 else 'argmax')
    spec = PolicySpec(cameras=tuple(data['cameras']), image_size=data['image_size'],
                      control_hz=float(data['control_hz']), context=model_config.context,
                      prompt_fraction=dataset.config.prompt_fraction if args.prompt_prob > 0 else 0.0,
                      decoding=decoding, robots={r: load_profile(r).joint_names for r in robots})
    checkpoint_config = {
        'policy': spec.to_dict(),
        'model': model_config.to_dict(), 'preset': args.preset, 'tokenizer': tokenizer_config(),
        'robot': robot_section(robots), 'stats': stats, 'data': data,
        'action_space': {'dim': 5, 'layout': ['vx', 'vy', 'vz', 'yaw_rate', 'grip'], 'range': [-1.0, 1.0]},
        'command': training_command(args),
        'git_revision': git_revision(), 'torch': torch.__version__,
    }
    torch.manual_seed(args.seed)
    model = Gato(model_config)
    if args.init is not None:
        init = latest_checkpoint(args.init)
        state_dict, init_config = load_checkpoint(init)
        init_model = GatoConfig.from_dict(init_config['model'])
        # The action inputs may change ('value' -> 'slot': the new index embedding starts from scratch).
        if dataclasses.replace(init_model, action_inputs=model_config.action_inputs) != model_config:
            raise SystemExit(f"--init {init}: model {init_config['model']} differs from this run's "
                             f'{model_config.to_dict()}')
        keys = set(model.state_dict())
        model.load_state_dict({k: v.float() for k, v in state_dict.items() if k in keys},
                              strict=init_model == model_config)
        checkpoint_config['init'] = str(init)
    if int(os.environ.get('RANK', '0')) == 0:
        print(f'training {args.preset} ({sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters) on '
              f'{len(episodes)} episodes / {stats["timesteps"]} timesteps / {len(dataset)} windows, '
              f'{len(held_out)} held out for validation, context {model_config.context}, device {args.device}')
    losses = train(model, dataset, train_config, args.out, checkpoint_config, device=args.device,
                   resume=args.resume, progress=not args.no_progress, val_dataset=val_dataset)
    if losses and int(os.environ.get('RANK', '0')) == 0:
        print(f'loss {losses[0]:.4f} -> {losses[-1]:.4f} over {len(losses)} steps; checkpoints in {args.out}')
    return 0
