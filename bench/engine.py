"""Engine benchmark (also `gato-ros bench engine`); see gato_ros/benchmarks/engine.py."""
import sys
from gato_ros.benchmarks.engine import main
sys.exit(main())
