"""`gato-ros bench train` from a checkout: `python bench/train.py [options]`; see gato_ros/benchmarks/train.py."""
import sys

from gato_ros.cli import main

sys.exit(main(['bench', 'train', *sys.argv[1:]]))
