"""`gato-ros bench safety` from a checkout: `python bench/safety.py [options]`; see gato_ros/benchmarks/safety.py."""
import sys

from gato_ros.cli import main

sys.exit(main(['bench', 'safety', *sys.argv[1:]]))
