"""MODEL_CARD.md for a checkpoint the recipe produced: Hugging Face-style YAML front matter (tags, metrics) then
the exact commands, the data seeds, the git revision, each stage's wall time, the teacher-forced diagnosis and
the closed-loop evaluation, all taken from the recipe's record (nothing typed by hand)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def front_matter(meta: dict) -> str:
    """Hugging Face-style YAML front matter: the metadata between two '---' lines."""
    return '\n'.join(['---', yaml.safe_dump(meta, sort_keys=False).strip(), '---'])


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def init_lines(init: dict | None) -> list[str]:
    """A recipe continued from a checkpoint (`recipe --init`) says whose weights its DAgger rounds started from."""
    if init is None:
        return []
    return [f"The DAgger rounds below start from the weights of `{init['checkpoint']}` (git revision "
            f"`{init['git_revision']}`), not from a first model trained here; that checkpoint's own model card holds "
            'the stages that made it.', '']


def write_model_card(checkpoint: Path, record: dict, evaluation: dict) -> Path:
    config = json.loads((Path(checkpoint) / 'config.json').read_text())
    stages = record['stages']
    diagnosis = json.loads(stages['diagnose']['stdout'][0]) if 'diagnose' in stages else None
    robot = next(iter(config['policy']['robots']))
    name = {'ur5e': 'UR5e', 'sawyer': 'Sawyer'}.get(robot, robot)
    front = {'license': 'apache-2.0', 'library_name': 'gato_ros', 'pipeline_tag': 'robotics',
             'tags': ['gato', 'behaviour-cloning', 'dagger', 'ros2', 'mujoco', robot, 'block-stacking'],
             'model-index': [{'name': Path(checkpoint).name, 'results': [{
                 'task': {'type': 'robotics', 'name': f"block stacking, red on blue (gato-ros eval, {name}, "
                          f"{evaluation['episodes']} held-out seeds)"},
                 'dataset': {'type': 'simulation', 'name': 'gato_ros MuJoCo stacking, seeds from 1000000'},
                 'metrics': [{'type': 'success_rate', 'value': round(evaluation['success_rate'], 4),
                              'name': 'success rate'}]}]}]}
    data = config['data']
    parts = [front_matter(front), '',
             f"# {Path(checkpoint).name} — model card", '',
             f"A Gato-style policy (`{config.get('preset')}` preset, {config['stats']['timesteps']} training timesteps "
             f"from {data['episodes']} episodes, {data.get('policy_driven_episodes', 0)} of them DAgger rollouts) "
             'trained by the stages below on the 2-core development CPU. It reads two 64×64 cameras and '
             'proprioception, one timestep at a time, and outputs the 5-D Cartesian action '
             f"{config['policy']['action_layout']} ({config['policy']['decoding']} decoding of the 1024 bins).", '',
             f"Git revision: `{config.get('git_revision')}`; torch {config.get('torch')}.", '',
             *init_lines(record.get('init')),
             '## Commands and wall time (the recipe record)', '',
             markdown_table(['stage', 'command(s)', 'wall time (s)'],
                    [[name, '<br>'.join(f'`{c}`' for c in s['commands']), s['seconds']] for name, s in stages.items()]),
             '', f"Demonstration seeds: {data['episode_seeds'][0]}..{data['episode_seeds'][-1]} "
             f"({len(data['episode_seeds'])} episodes in all, including DAgger rollouts); evaluation seeds from "
             f"{evaluation['first_seeds']}.", '']
    if diagnosis is not None:
        parts += ['## Teacher-forced diagnosis (held-out episodes, mean absolute action error)', '',
                  markdown_table(['predictor', *diagnosis['mae']['predict_zero'].keys()],
                         [[name, *row.values()] for name, row in diagnosis['mae'].items()]), '']
    parts += ['## Closed-loop evaluation (`gato-ros eval`, sim + GatoPolicy + SafetyFilter)', '',
              markdown_table(['run', 'episodes', 'success', 'episodes with a hold', 'latency p50 / p99 (ms)',
                      'deadline misses'],
                     [[f'`--robot {robot}` (red on blue)', evaluation['episodes'],
                       f"**{round(evaluation['success_rate'], 4)}**", round(evaluation['halt_episode_fraction'], 4),
                       f"{evaluation['latency_ms_p50']} / {evaluation['latency_ms_p99']}",
                       round(evaluation['deadline_miss_rate'], 4)]]), '',
              '```json', json.dumps({k: v for k, v in evaluation.items() if k != 'parts'}, indent=2), '```', '']
    path = Path(checkpoint) / 'MODEL_CARD.md'
    path.write_text('\n'.join(parts))
    return path
