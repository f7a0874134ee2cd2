"""`gato-ros` command line: one sub-command per module under gato_ros.commands.

Each command module defines `add_arguments(parser)` and `run(args) -> int`; modules are imported
only when their command runs, so `gato-ros info` does not pay for rclpy or MuJoCo.
"""

import argparse
import importlib
import sys

COMMANDS = {
    'demo': 'Bring up sim + policy + safety over ROS 2 topics and stack blocks',
    'bringup': 'Run policy_node and safety_controller_node in one process for a real or simulated arm',
    'info': 'Print a model preset\'s shape and parameter counts',
    'bench': 'Benchmarks: engine (one control step) and safety (one filter tick)',
    'sim': 'Embedded MuJoCo simulation: run the scripted expert',
    'record': 'Record expert demonstrations to MCAP (rosbag2 layout)',
    'train': 'Behaviour cloning of a Gato checkpoint from recorded demonstrations',
    'eval': 'Closed-loop evaluation of a checkpoint in simulation',
    'dagger': 'One DAgger round: the policy drives, the scripted expert labels every visited state',
    'diagnose': 'Teacher-forced action error of a checkpoint on held-out episodes, next to trivial baselines',
    'export': 'Deployable copy of a checkpoint (bf16 weights, no optimizer state)',
    'recipe': 'From nothing to an exported, evaluated stacking checkpoint: record, train, DAgger, eval, export',
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='gato-ros', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', required=True, metavar='COMMAND')
    for name, help_text in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help or the 'invalid choice' error and exits
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(f'gato_ros.commands.{name}')
    cmd_parser = argparse.ArgumentParser(prog=f'gato-ros {name}', description=COMMANDS[name])
    module.add_arguments(cmd_parser)
    return int(module.run(cmd_parser.parse_args(rest)) or 0)


if __name__ == '__main__':
    sys.exit(main())
