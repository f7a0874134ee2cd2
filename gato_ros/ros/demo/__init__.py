"""`gato-ros demo`: sim_node + policy_node + safety_controller_node over real ROS 2 topics, stacking blocks.

One module per job: options (DemoOptions), expert (the scripted expert as a policy), recorder (the node that
watches the topics and writes the video), run (the episodes, on the runtime's spin_until) and report (the
per-episode line and the summary).
"""

from gato_ros.ros.demo.options import DemoOptions
from gato_ros.ros.demo.run import Interrupted, run_demo

__all__ = ['DemoOptions', 'Interrupted', 'run_demo']
