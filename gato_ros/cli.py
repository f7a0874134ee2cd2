"""`gato-ros` command line: one sub-command per module under gato_ros.commands.

Each command module defines `add_arguments(parser)` and `run(args) -> int`; modules are imported
only when their command runs, so `gato-ros info` does not pay for rclpy or MuJoCo.

Errors: a bad input (an argument, a missing file, a value out of range) is one line naming it on stderr and exit
status 2; any other failure is one line and exit status 1. `--debug` adds the traceback.
"""

import argparse
import importlib
import logging
import os
import sys
import traceback
import warnings

from gato_ros import __version__

COMMANDS = {
    'demo': 'Bring up sim + policy + safety over ROS 2 topics and stack blocks',
    'bringup': 'Run policy_node and safety_controller_node (in a child process) for a real or simulated arm',
    'info': 'Print a model preset\'s shape and parameter counts',
    'bench': 'Benchmarks: engine (one control step) and safety (one filter tick)',
    'sim': 'Embedded MuJoCo simulation: run the scripted expert',
    'record': 'Record expert demonstrations, one rosbag2 bag (MCAP) per episode',
    'import-bag': 'Turn bags recorded on a robot (ros2 bag record) into training episodes',
    'train': 'Behaviour cloning of a Gato checkpoint from recorded demonstrations',
    'eval': 'Closed-loop evaluation of a checkpoint in simulation',
    'dagger': 'One DAgger round: the policy drives, the scripted expert labels every visited state',
    'diagnose': 'Teacher-forced action error of a checkpoint on held-out episodes, next to trivial baselines',
    'export': 'Deployable copy of a checkpoint (bf16 weights, no optimizer state)',
    'recipe': 'From nothing to an exported, evaluated stacking checkpoint: record, train, DAgger, eval, export',
}
LOG_LEVELS = ('debug', 'info', 'warn', 'error')
USER_ERRORS = (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


class UsageError(Exception):
    """A command line argparse rejected; the message names the argument."""


class Parser(argparse.ArgumentParser):
    """argparse, but an error is raised for main() to report in one line (argparse prints usage first)."""

    def error(self, message):
        raise UsageError(f'{message} (see {self.prog} --help)')


def build_parser() -> argparse.ArgumentParser:
    commands = '\n'.join(f'  {name:10s} {text}' for name, text in COMMANDS.items())
    parser = Parser(prog='gato-ros', description=__doc__.splitlines()[0], epilog=f'commands:\n{commands}\n\n'
                    'Options go before COMMAND; `gato-ros COMMAND --help` lists its own.',
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--version', action='version', version=f'%(prog)s {__version__}')
    parser.add_argument('--debug', action='store_true', help='print the Python traceback of an error')
    parser.add_argument('--log-level', choices=LOG_LEVELS, default='info',
                        help='Python logging, and the ROS loggers of the nodes a command starts (default info)')
    parser.add_argument('command', choices=COMMANDS, metavar='COMMAND', help='one of the commands below')
    rest = parser.add_argument('args', nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    rest.required = False  # argparse counts REMAINDER as required: 'gato-ros' alone would ask for 'args' too
    return parser


def _log_warning(message, category, *_):
    logging.getLogger('gato_ros').warning('%s: %s', category.__name__, message)


def _run(options: argparse.Namespace) -> int:
    level = logging.getLevelName(options.log_level.upper())
    # Other libraries' loggers stay at WARNING (PyOpenGL says INFO things on import); ours follow --log-level,
    # and so do Python warnings (e.g. a skipped episode file), one line each.
    logging.basicConfig(level=max(level, logging.WARNING), format='%(levelname)s %(name)s: %(message)s')
    logging.getLogger('gato_ros').setLevel(level)
    warnings.showwarning = _log_warning
    module = importlib.import_module(f"gato_ros.commands.{options.command.replace('-', '_')}")
    parser = Parser(prog=f'gato-ros {options.command}', description=COMMANDS[options.command])
    module.add_arguments(parser)
    args = parser.parse_args(options.args)
    args.log_level = options.log_level
    return int(module.run(args) or 0)


def main(argv=None) -> int:
    os.environ.setdefault('MUJOCO_GL', 'egl')  # headless rendering, set before anything imports MuJoCo
    options = None
    try:
        options = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
        return _run(options)
    except KeyboardInterrupt:
        error, code = 'interrupted', 130
    except SystemExit as exc:  # --help / --version (code 0) or `raise SystemExit('message')` in a command
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        error, code = exc, 2
    except (UsageError, *USER_ERRORS) as exc:
        error, code = exc, 2
    except Exception as exc:  # a failure that is not the input's fault: still one line, the type says what
        error, code = exc, 1
    debug = options is not None and options.debug
    if debug and isinstance(error, BaseException):
        traceback.print_exception(error)
    message = f'{type(error).__name__}: {error} (rerun with --debug for the traceback)' if code == 1 else error
    print(f"gato-ros{' ' + options.command if options else ''}: {message}", file=sys.stderr)
    return code


if __name__ == '__main__':
    sys.exit(main())
