"""README.md of a folder of recorded episodes, the dataset card: Hugging Face-style YAML front matter (robots,
tasks, drivers, counts, image size, cameras) then a table of what the folder holds, taken from the episodes'
own metadata, so a resumed or extended recording rewrites it to match."""

from __future__ import annotations

import collections
import warnings
from pathlib import Path

from ..model_card import front_matter, markdown_table
from .mcap_io import EpisodeError, episode_paths, read_info

CARD = 'README.md'


def write_dataset_card(directory, image_size: int, command: str) -> Path:
    """Writes DIRECTORY/README.md for the episodes in it; `command` is the recording command line."""
    directory = Path(directory)
    infos = []
    for path in episode_paths(directory):
        try:
            infos.append(read_info(path))
        except EpisodeError as e:
            warnings.warn(f'dataset card: leaving out {e}', stacklevel=2)
    robots = sorted({i.robot for i in infos})
    tasks = collections.Counter(','.join(i.task) for i in infos)
    seeds = sorted(i.seed for i in infos)
    meta = {'license': 'apache-2.0', 'task_categories': ['robotics'],
            'tags': ['gato_ros', 'rosbag2', 'mcap', 'ros2', 'mujoco', 'block-stacking', *robots],
            'size_categories': ['n<1K' if len(infos) < 1000 else '1K<n<10K'],
            'gato_ros': {'robots': robots, 'tasks': dict(tasks), 'episodes': len(infos),
                         'successful': sum(i.success for i in infos),
                         'drivers': dict(collections.Counter(i.driver for i in infos)),
                         'seeds': [seeds[0], seeds[-1]] if seeds else [],
                         'control_hz': sorted({i.control_hz for i in infos}),
                         'cameras': sorted({c for i in infos for c in i.cameras}),
                         'image_size': image_size, 'steps': sum(i.steps for i in infos)}}
    groups: dict[tuple, list] = collections.defaultdict(list)
    for i in infos:
        groups[(i.robot, f'{i.task[0]} on {i.task[1]}', i.driver)].append(i.success)
    rows = [[*key, len(successes), sum(successes)] for key, successes in sorted(groups.items())]
    text = '\n'.join([
        front_matter(meta), '', f'# {directory.name} — dataset card', '',
        f'{len(infos)} episodes recorded by gato_ros, one rosbag2 bag each (metadata.yaml + MCAP; earlier '
        'recordings: single `.mcap` files), seeds '
        f"{f'{seeds[0]}..{seeds[-1]}' if seeds else '-'}, {image_size}×{image_size} RGB from "
        f"{', '.join(meta['gato_ros']['cameras']) or '-'}. Driver `expert`: the scripted expert moved the arm; "
        '`policy`: a checkpoint did (DAgger), every action is the expert\'s label. Read them with '
        '`gato_ros.core.data.load_episodes` or any rosbag2 tool.', '',
        markdown_table(['robot', 'task', 'driver', 'episodes', 'successful'], rows), '',
        f'Recorded with: `{command}`', ''])
    path = directory / CARD
    path.write_text(text)
    return path
