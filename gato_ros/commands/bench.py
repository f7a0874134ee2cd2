"""`gato-ros bench {engine,safety,train} ...`: the one entry point of the benchmarks (bench/*.py and the Makefile
call it); the options after NAME are that benchmark's (gato_ros/benchmarks/NAME.py, `--help`)."""

import argparse

BENCHMARKS = ('engine', 'safety', 'train')


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('benchmark', choices=BENCHMARKS)
    parser.add_argument('options', nargs=argparse.REMAINDER, help='options of that benchmark (see --help)')


def run(args: argparse.Namespace) -> int:
    from gato_ros.benchmarks import engine, safety, train

    return {'engine': engine, 'safety': safety, 'train': train}[args.benchmark].main(args.options)
