"""Every committed checkpoint's MODEL_CARD.md opens with Hugging Face-style YAML front matter whose evaluation
results are the ones in its own results table."""

import re
from pathlib import Path

import pytest
import yaml

CARDS = sorted((Path(__file__).resolve().parents[1] / 'checkpoints').glob('*/MODEL_CARD.md'))


@pytest.mark.parametrize('card', CARDS, ids=[c.parent.name for c in CARDS])
def test_model_card_front_matter(card):
    text = card.read_text()
    match = re.match(r'---\n(.*?)\n---\n', text, re.S)
    assert match, f'{card} does not start with YAML front matter between --- lines'
    meta = yaml.safe_load(match.group(1))
    assert meta['license'] == 'apache-2.0' and meta['pipeline_tag'] == 'robotics' and meta['tags']
    (model,) = meta['model-index']
    assert model['name'] == card.parent.name
    checked = 0
    for result in model['results']:
        (metric,) = result['metrics']
        assert metric['type'] == 'success_rate' and 0.0 <= metric['value'] <= 1.0
        robot = 'ur5e' if 'UR5e' in result['task']['name'] else 'sawyer'
        row = re.search(rf'^\| `--robot {robot}` \(red on blue\) \| \d+ \| \*\*([0-9.]+)\*\* \|', text, re.M)
        if row:  # the card's evaluation table, `| run | episodes | success | ...`
            assert float(row.group(1)) == metric['value'], f'{robot}: front matter and table disagree'
            checked += 1
    assert checked, 'no front-matter result matches a row of the evaluation table'
