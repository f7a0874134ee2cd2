"""Benchmark one safety-filter tick: same as `gato-ros bench safety`; see gato_ros/benchmarks/safety.py."""
from gato_ros.benchmarks.safety import main
raise SystemExit(main())
