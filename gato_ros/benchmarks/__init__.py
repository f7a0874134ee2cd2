"""The benchmarks behind `gato-ros bench NAME` (and bench/engine_peers.py)."""

import argparse
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr and exit status 2 (argparse prints the usage first)."""

    def error(self, message):
        print(f'{self.prog}: {message} (see --help)', file=sys.stderr)
        raise SystemExit(2)
