"""`gato-ros info --preset P`: a model preset's shape and parameter counts (built on the 'meta' device, so
even gato-1.18b allocates no memory)."""

import argparse

import torch

from gato_ros.core.model import PRESETS, Gato


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--preset', default='tiny', choices=sorted(PRESETS), help='model preset (default tiny)')


def run(args: argparse.Namespace) -> int:
    cfg = PRESETS[args.preset]
    with torch.device('meta'):
        counts = Gato(cfg).num_params()
    print(f'{args.preset}: {cfg.n_layer} layers, d_model {cfg.d_model}, {cfg.n_head} heads x {cfg.head_dim}, '
          f'GEGLU feed-forward {cfg.d_ff}, context {cfg.context}, vocabulary {cfg.vocab_size}')
    labels = {'total': 'total', 'embedding_table': 'embedding table (tied output head)',
              'image_block': 'image ResNet block + projection', 'position_encodings': 'position encodings',
              'transformer': 'transformer blocks + final norm'}
    for key, label in labels.items():
        print(f'  {label:36s} {counts[key]:>15,d}  ({counts[key] / 1e6:,.1f}M)')
    return 0
