"""`gato-ros recipe` end to end at toy sizes: every stage runs, is recorded with its wall time, is skipped when
run again, and the export carries a model card whose front matter and table agree."""

import json
import re

import pytest
import yaml

from gato_ros.cli import main as cli


@pytest.mark.slow
def test_recipe_runs_every_stage_once_and_writes_the_model_card(tmp_path, capsys):
    args = ['recipe', '--out', str(tmp_path / 'run'), '--export', str(tmp_path / 'export'), '--episodes', '2',
            '--heldout-episodes', '1', '--steps', '2', '--batch-size', '4', '--dagger-rounds', '1',
            '--dagger-episodes', '1', '--dagger-steps', '1', '--eval-episodes', '2', '--max-time', '1.0',
            '--threads', '1']
    assert cli(args) == 0
    record = json.loads((tmp_path / 'run' / 'recipe.json').read_text())
    stages = record['stages']
    assert list(stages) == ['record', 'heldout', 'train', 'dagger-1', 'retrain-1', 'diagnose', 'export', 'eval']
    assert all(s['complete'] and s['seconds'] > 0 for s in stages.values())
    assert len(stages['eval']['commands']) == 2                        # two evaluation processes, merged
    assert f"--checkpoint {tmp_path / 'export'} " in stages['eval']['commands'][0]   # evaluated as shipped
    assert '--relabel' not in stages['retrain-1']['commands'][0]        # the actions as recorded (docs/learning.md)
    assert '--dagger-share' in stages['retrain-1']['commands'][0]       # the rollouts' share of the windows
    assert 'slot' in stages['train']['commands'][0]                     # closed loop decodes what was trained
    (rollouts,) = [json.loads(line) for line in stages['dagger-1']['stdout']]
    assert sum(rollouts['furthest_phase'].values()) == 1                # each rollout's furthest phase, counted
    assert rollouts['ended_still'] in (0, 1)                           # rollouts stopped at a standstill
    merged = json.loads((tmp_path / 'run' / 'eval.json').read_text())
    assert sum(merged['furthest_phase'].values()) == 2
    assert merged['gripper_closings_mean'] >= 0                         # gripper closings, averaged over both
    assert sum(merged['step_share_by_phase'].values()) == pytest.approx(1.0, abs=1e-3)   # where the steps went
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary['episodes'] == 2 and 0.0 <= summary['success_rate'] <= 1.0

    card = (tmp_path / 'export' / 'MODEL_CARD.md').read_text()
    meta = yaml.safe_load(re.match(r'---\n(.*?)\n---\n', card, re.S).group(1))
    (result,) = meta['model-index'][0]['results']
    row = re.search(r'^\| `--robot ur5e` \(red on blue\) \| 2 \| \*\*([0-9.]+)\*\* \|', card, re.M)
    assert float(row.group(1)) == result['metrics'][0]['value'] == summary['success_rate']
    assert 'gato-ros train --data' in card and 'model_mean' in card       # the commands and the diagnosis

    assert cli(args) == 0                                               # again: every stage is skipped
    assert capsys.readouterr().out.count('skipped') == len(stages)

    # --init: no first model; the rounds start from the given checkpoint, and the card says whose weights those are
    init = tmp_path / 'run' / 'train-1'
    more = ['recipe', '--out', str(tmp_path / 'more'), '--export', str(tmp_path / 'export-more'), '--init', str(init),
            *args[5:]]
    assert cli(more) == 0
    record = json.loads((tmp_path / 'more' / 'recipe.json').read_text())
    assert 'train' not in record['stages'] and record['init']['checkpoint'].startswith(str(init))
    assert f'--init {record["init"]["checkpoint"]}' in record['stages']['retrain-1']['commands'][0]
    assert record['init']['checkpoint'] in (tmp_path / 'export-more' / 'MODEL_CARD.md').read_text()

