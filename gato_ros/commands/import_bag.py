"""`gato-ros import-bag BAG [BAG ...] --out DIR [--robot R] [--task top,bottom] [--camera NAME=TOPIC ...]
[--joint-states TOPIC] [--action-topic TOPIC] [--image-size N] [--control-hz HZ] [--failed] [--json]`: bags
recorded with `ros2 bag record` on a robot (camera topics, /joint_states, the 5-D action topic) -> training
episodes in DIR, one per bag (gato_ros.core.data.bag_import), and DIR/README.md, the dataset card. Bags already
imported are skipped, as `record` skips finished episodes."""

import argparse
import json
from pathlib import Path

from gato_ros.commands import arguments

DEFAULT_CAMERAS = ('front_left', 'front_right')


def camera_topic_pair(text: str) -> tuple[str, str]:
    """'NAME=TOPIC': a camera name of the policy and its topic in the bag."""
    name, sep, topic = text.partition('=')
    if not sep or not name or not topic.startswith('/'):
        raise argparse.ArgumentTypeError(f"expected NAME=TOPIC (e.g. front_left=/camera/front_left/image_raw), "
                                         f"got {text!r}")
    return name, topic


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from gato_ros.core.data.mcap_io import ACTION_TOPIC, JOINT_STATES_TOPIC, camera_topic

    parser.add_argument('bags', nargs='+', type=Path, help='rosbag2 bag directories (or their .mcap files)')
    parser.add_argument('--out', required=True, type=Path, help='episode directory (created if missing)')
    parser.add_argument('--robot', type=arguments.robot, default='ur5e',
                        help='robot profile whose joints the bags hold: ur5e, sawyer or a YAML path (default ur5e)')
    parser.add_argument('--task', type=arguments.task_pair, default=('red', 'blue'),
                        help="'top,bottom': the stacking task the demonstrations perform (default red,blue)")
    defaults = ' '.join(f'{c}={camera_topic(c)}' for c in DEFAULT_CAMERAS)
    parser.add_argument('--camera', type=camera_topic_pair, action='append',
                        help=f'NAME=TOPIC, one per camera, Image or CompressedImage (default {defaults})')
    parser.add_argument('--joint-states', default=JOINT_STATES_TOPIC,
                        help=f'sensor_msgs/JointState topic (default {JOINT_STATES_TOPIC})')
    parser.add_argument('--action-topic', default=ACTION_TOPIC,
                        help=f'std_msgs/Float64MultiArray topic of the 5-D actions, one per step '
                             f'(default {ACTION_TOPIC})')
    parser.add_argument('--image-size', type=arguments.image_size, default=64,
                        help='training image size, a multiple of the 16 px patch (default 64)')
    parser.add_argument('--control-hz', type=float, default=None,
                        help='control rate to record (default: measured from the action topic)')
    parser.add_argument('--failed', action='store_true', help='the demonstrations did not achieve the task')
    parser.add_argument('--seed', type=int, default=0, help='seed label of the first episode; bag i gets seed + i')
    parser.add_argument('--json', action='store_true', help='print one JSON summary as the last line')


def run(args: argparse.Namespace) -> int:
    from gato_ros.core.data.bag_import import BagImportConfig, import_bag
    from gato_ros.core.data.card import write_dataset_card
    from gato_ros.core.data.mcap_io import EpisodeError, camera_topic
    from gato_ros.core.data.record import is_complete

    cameras = dict(args.camera) if args.camera else {c: camera_topic(c) for c in DEFAULT_CAMERAS}
    configs = [BagImportConfig(robot=args.robot, task=args.task, cameras=cameras, joint_states_topic=args.joint_states,
                               action_topic=args.action_topic, image_size=args.image_size, control_hz=args.control_hz,
                               success=not args.failed, seed=args.seed + i) for i in range(len(args.bags))]
    args.out.mkdir(parents=True, exist_ok=True)
    imported, skipped, steps = [], 0, 0
    for bag, config in zip(args.bags, configs):
        target = args.out / (bag.stem if bag.suffix == '.mcap' else bag.name)
        if is_complete(target):
            skipped += 1
            continue
        try:
            info = import_bag(bag, target, config)
        except EpisodeError as e:
            raise SystemExit(str(e)) from None
        imported.append(str(target))
        steps += info.steps
    write_dataset_card(args.out, args.image_size, arguments.command_line('import-bag', args))
    summary = {'robot': args.robot, 'bags': len(args.bags), 'imported': len(imported), 'skipped': skipped,
               'steps': steps, 'episodes': imported, 'out': str(args.out)}
    print(json.dumps(summary) if args.json else
          f'imported {len(imported)} bags ({steps} steps; {skipped} already there) to {args.out}')
    return 0
