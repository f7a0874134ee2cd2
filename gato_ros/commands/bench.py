"""`gato-ros bench {engine,safety,train} ...`: forwards to the benchmark modules that bench/*.py also run."""

import argparse
import importlib

BENCHMARKS = ('engine', 'safety', 'train')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('benchmark', choices=BENCHMARKS)
    parser.add_argument('options', nargs=argparse.REMAINDER, help='options of that benchmark (see --help)')


def run(args: argparse.Namespace) -> int:
    module = importlib.import_module(f'gato_ros.benchmarks.{args.benchmark}')
    return module.main(args.options)
