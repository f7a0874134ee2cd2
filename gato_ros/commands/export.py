"""`gato-ros export --checkpoint SRC --out DST [--dtype bf16] [--prompt-task top,bottom]`: a deployable copy of a
training checkpoint (weights cast to bf16 or fp16: half the size; no optimizer state)."""

import argparse
from pathlib import Path

from gato_ros.commands import arguments

DTYPES = ('bf16', 'fp16', 'fp32')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--checkpoint', required=True, type=arguments.checkpoint,
                        help='checkpoint directory, or a training --out directory (its newest checkpoint)')
    parser.add_argument('--out', required=True, type=Path, help='destination directory')
    parser.add_argument('--dtype', choices=DTYPES, default='bf16', help='weight dtype on disk (default bf16)')
    parser.add_argument('--prompt-task', type=arguments.task_pair, default=None,
                        help="'top,bottom': `gato-ros demo` conditions this checkpoint on a demonstration of it")


def run(args: argparse.Namespace) -> int:
    import torch

    from gato_ros.core.checkpoint import export_checkpoint

    dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16, 'fp32': torch.float32}[args.dtype]
    extra = {'demo': {'prompt_task': list(args.prompt_task)}} if args.prompt_task else None
    out = export_checkpoint(args.checkpoint, args.out, dtype, extra)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f'exported {args.checkpoint} -> {out} ({args.dtype}, {size:.1f} MiB)')
    return 0
