"""Training throughput benchmark (also `gato-ros bench train`); see gato_ros/benchmarks/train.py."""
import sys
from gato_ros.benchmarks.train import main
sys.exit(main())
