"""`gato-ros bench engine` from a checkout: `python bench/engine.py [options]`; see gato_ros/benchmarks/engine.py."""
import sys

from gato_ros.cli import main

sys.exit(main(['bench', 'engine', *sys.argv[1:]]))
