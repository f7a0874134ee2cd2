"""`gato-ros bringup`: policy_node + safety_controller_node (in a child process) for a real or simulated arm.

  gato-ros bringup --robot ur5e --checkpoint checkpoints/stack
  gato-ros bringup --robot sawyer --allow-random-weights --preset tiny --command-interface forward_velocity
  gato-ros bringup --robot ur5e --checkpoint CKPT --ros-args --params-file my_overrides.yaml
  gato-ros bringup --robot ur5e --checkpoint CKPT --realtime   # SCHED_FIFO, safety and policy on CPUs apart

Runs until Ctrl-C or SIGTERM, then brakes the arm to a hold, publishes those commands and exits 0.
On exit it prints the safety commands' measured rate and longest gap (and how many exceeded a UR's 40 ms) and the
policy step latency (--json: one JSON line).
"""

import argparse
import json

from gato_ros.commands import arguments
from gato_ros.ros.params import COMMAND_INTERFACES
from gato_ros.ros.placement import REALTIME_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--robot', choices=('ur5e', 'sawyer'), required=True)
    weights = parser.add_mutually_exclusive_group(required=True)
    weights.add_argument('--checkpoint', help='checkpoint directory (model.safetensors + config.json)')
    weights.add_argument('--allow-random-weights', action='store_true',
                         help='RANDOM weights, for bring-up and tests only: the arm moves meaninglessly')
    parser.add_argument('--preset', help='model preset for random weights (default: config/policy.yaml)')
    parser.add_argument('--device', type=arguments.torch_device,
                        help='torch device: cpu, cuda, cuda:N (default: config/policy.yaml)')
    parser.add_argument('--command-interface', choices=COMMAND_INTERFACES,
                        help="default: the robot profile's")
    parser.add_argument('--use-sim-time', action='store_true', help='follow /clock (simulation)')
    parser.add_argument('--realtime', action='store_true', help=REALTIME_HELP)
    parser.add_argument('--json', action='store_true', help='print the measurements as one JSON line at exit')
    parser.add_argument('--ros-args', dest='ros_args', nargs=argparse.REMAINDER, default=[],
                        help='ROS arguments for both nodes, e.g. --ros-args --params-file overrides.yaml')


def run(args: argparse.Namespace) -> int:
    from gato_ros.ros.bringup import BringupOptions, bringup

    options = BringupOptions(robot=args.robot, checkpoint=args.checkpoint,
                             allow_random_weights=True if args.allow_random_weights else None,
                             preset=args.preset, device=args.device, command_interface=args.command_interface,
                             use_sim_time=True if args.use_sim_time else None, realtime=args.realtime)
    code, stats = bringup(options, ros_args=['--log-level', args.log_level, *args.ros_args])
    if stats is not None:
        print(json.dumps(stats) if args.json else '\n'.join(f'{k}: {v}' for k, v in stats.items()))
    return code
