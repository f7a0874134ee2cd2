"""Episodes in MCAP (rosbag2 layout), recording, and the episode -> Gato token dataset with prompts."""

import json
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from gato_ros.cli import main as cli
from gato_ros.core.data import EpisodeError, EpisodeWriter, load_episodes, read_episode, read_info
from gato_ros.core.data.dataset import DatasetConfig, EpisodeDataset, collate, demonstration_prompt
from gato_ros.core.data.mcap_io import Episode, EpisodeInfo
from gato_ros.core.observation import observer_for
from gato_ros.core.robots import load_profile
from gato_ros.core.tokenizer import PATCH_PLACEHOLDER

CAMERAS = ('front_left', 'front_right')
LEGACY = Path(__file__).parent / 'data' / 'legacy_episode.mcap'


def synthetic_episode(seed: int, steps: int = 12, task=('red', 'blue'), size: int = 16, success: bool = True):
    """A UR5e episode whose image pixels all equal 20 * seed + t, so a token window tells where it came from."""
    profile = load_profile('ur5e')
    observer = observer_for('ur5e')
    closed, opened = observer.finger_closed, observer.finger_open
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    pixel = (20 * seed + t).astype(np.uint8)[:, None, None, None]
    images = {c: np.broadcast_to(pixel, (steps, size, size, 3)).copy() for c in CAMERAS}
    info = EpisodeInfo(robot='ur5e', task=tuple(task), seed=seed, success=success, control_hz=10.0, cameras=CAMERAS,
                       joint_names=profile.joint_names, finger_joint_names=profile.gripper_joint_names, steps=steps)
    return Episode(info=info, time=t * 0.1, q=profile.ready + rng.normal(0, 0.05, (steps, 6)),
                   qd=rng.normal(0, 0.1, (steps, 6)), finger_q=np.tile((closed + opened) / 2, (steps, 1)),
                   images=images, actions=rng.uniform(-1, 1, (steps, 5)).astype(np.float32))


def write(episode: Episode, path: Path) -> Path:
    info = episode.info
    with EpisodeWriter(path, info.robot, info.task, info.seed, info.control_hz, info.cameras, info.joint_names,
                       info.finger_joint_names) as writer:
        for t in range(len(episode)):
            writer.add(episode.time[t], np.r_[episode.q[t], episode.finger_q[t]], np.r_[episode.qd[t], 0.0, 0.0],
                       {c: episode.images[c][t] for c in info.cameras}, episode.actions[t])
        writer.close(info.success)
    return path


def test_episode_is_a_rosbag2_bag_read_back_with_rosbags(tmp_path):
    from mcap.reader import make_reader
    from rosbags.interfaces import QosReliability
    from rosbags.rosbag2 import Reader
    from rosbags.typesys import Stores, get_typestore

    before = time.time_ns()
    episode = synthetic_episode(3)
    path = write(episode, tmp_path / 'ep')
    assert sorted(p.name for p in path.iterdir()) == ['ep.mcap', 'metadata.yaml'] and list(tmp_path.iterdir()) == [path]
    typestore = get_typestore(Stores.ROS2_JAZZY)
    with Reader(path) as reader:
        topics = {c.topic: c for c in reader.connections}
        assert sorted(topics) == ['/camera/front_left/image_raw', '/camera/front_right/image_raw', '/gato/action',
                                  '/joint_states']
        for connection in topics.values():
            package, _, name = connection.msgtype.split('/')
            installed = json.loads((Path(sys.prefix) / 'share' / package / 'msg' / f'{name}.json').read_text())
            assert connection.digest == installed['type_hashes'][0]['hash_string'], connection.msgtype  # RIHS01
            assert connection.msgcount == 12 and connection.ext.serialization_format == 'cdr'
            assert [q.reliability for q in connection.ext.offered_qos_profiles] == [QosReliability.RELIABLE]
        assert topics['/joint_states'].msgtype == 'sensor_msgs/msg/JointState'
        assert topics['/gato/action'].msgtype == 'std_msgs/msg/Float64MultiArray'
        start = reader.start_time
        assert before <= start <= time.time_ns()                      # wall-clock time, not 1970
        assert reader.duration == 1_100_000_001                       # 12 steps at 10 Hz (rosbags counts the end)
        images = [(ns, typestore.deserialize_cdr(raw, c.msgtype))
                  for c, ns, raw in reader.messages(connections=[topics['/camera/front_left/image_raw']])]
    ns, image = images[5]
    assert image.encoding == 'rgb8' and (image.height, image.width) == (16, 16)
    assert image.header.frame_id == 'front_left'
    assert image.header.stamp.sec * 10**9 + image.header.stamp.nanosec == ns == start + 500_000_000
    assert (image.data == 20 * 3 + 5).all()
    with open(path / 'ep.mcap', 'rb') as f:
        mcap = make_reader(f)
        assert mcap.get_header().profile == 'ros2'
        summary = mcap.get_summary()
        assert {c.compression for c in summary.chunk_indexes} == {'zstd'}
        assert {ch.message_encoding for ch in summary.channels.values()} == {'cdr'}
        assert {s.encoding for s in summary.schemas.values()} == {'ros2msg'}
        assert all('offered_qos_profiles' in ch.metadata for ch in summary.channels.values())
    back = read_episode(path)
    assert back.info == episode.info == read_info(path)
    np.testing.assert_allclose(back.q, episode.q)
    np.testing.assert_allclose(back.finger_q, episode.finger_q)
    np.testing.assert_allclose(back.actions, episode.actions, atol=1e-6)
    np.testing.assert_allclose(back.time, episode.time, atol=1e-9)
    for camera in CAMERAS:
        np.testing.assert_array_equal(back.images[camera], episode.images[camera])


def test_single_file_episodes_of_earlier_recordings_still_load(tmp_path):
    """test/data/legacy_episode.mcap was written by the single-file EpisodeWriter that came before bags
    (synthetic_episode(4, steps=6) with block poses); training data recorded then must still load."""
    legacy = tmp_path / 'old.mcap'
    legacy.write_bytes(LEGACY.read_bytes())
    write(synthetic_episode(5), tmp_path / 'new')
    episodes = load_episodes(tmp_path)
    assert [e.info.seed for e in episodes] == [5, 4]                 # sorted by name: 'new' < 'old.mcap'
    old, expected = episodes[1], synthetic_episode(4, steps=6)
    assert old.info == expected.info
    np.testing.assert_allclose(old.q, expected.q)
    np.testing.assert_allclose(old.actions, expected.actions, atol=1e-6)
    np.testing.assert_allclose(old.time, expected.time, atol=1e-9)
    np.testing.assert_array_equal(old.images['front_right'], expected.images['front_right'])
    assert old.blocks.shape == (6, 3, 7)
    assert len(EpisodeDataset(episodes, DatasetConfig(context=256))) > 0


def test_corrupt_and_truncated_episodes_are_skipped_with_a_warning(tmp_path):
    good = write(synthetic_episode(1), tmp_path / 'a_good')
    truncated = tmp_path / 'b_truncated'
    shutil.copytree(good, truncated)
    data = (good / 'a_good.mcap').read_bytes()
    (truncated / 'a_good.mcap').write_bytes(data[:len(data) // 2])
    (tmp_path / 'c_garbage.mcap').write_bytes(b'not an mcap file')       # a single-file episode
    shutil.copytree(good, tmp_path / 'd_bad_metadata')
    (tmp_path / 'd_bad_metadata' / 'metadata.yaml').write_text('rosbag2_bagfile_information: [')
    (tmp_path / 'e_unfinished.partial').mkdir()                          # a recording in progress: not listed
    (tmp_path / 'e_unfinished.partial' / 'e_unfinished').mkdir()
    with pytest.warns(UserWarning) as record:
        episodes = load_episodes(tmp_path)
    assert [e.info.seed for e in episodes] == [1]
    messages = [str(w.message) for w in record]
    assert len(messages) == 3
    for name in ('b_truncated', 'c_garbage.mcap', 'd_bad_metadata'):
        assert sum(name in m for m in messages) == 1, (name, messages)
    with pytest.raises(EpisodeError, match='b_truncated: cannot decode messages'):
        read_episode(truncated)
    with pytest.raises(EpisodeError, match='unreadable metadata.yaml'):
        read_info(tmp_path / 'd_bad_metadata')


def test_record_command_writes_episodes_and_resumes(tmp_path, capsys):
    args = ['record', '--robot', 'ur5e', '--out', str(tmp_path), '--image-size', '32', '--max-time', '1.0',
            '--task', 'green,red', '--json']
    assert cli([*args, '--episodes', '1']) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first['recorded'] == 1 and first['skipped'] == 0
    (tmp_path / 'ur5e_green-on-red_seed0000001.partial').mkdir()   # an interrupted recording: done again
    assert cli([*args, '--episodes', '2']) == 0
    second = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert second['recorded'] == 1 and second['skipped'] == 1
    # An episode recorded as a single file before bags counts as done too.
    shutil.copy(LEGACY, tmp_path / 'ur5e_green-on-red_seed0000002.mcap')
    assert cli([*args, '--episodes', '3']) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])['skipped'] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        'README.md', 'ur5e_green-on-red_seed0000000', 'ur5e_green-on-red_seed0000001',
        'ur5e_green-on-red_seed0000002.mcap']
    card = (tmp_path / 'README.md').read_text()
    meta = yaml.safe_load(re.match(r'---\n(.*?)\n---\n', card, re.S).group(1))   # Hugging Face-style front matter
    assert meta['task_categories'] == ['robotics'] and 'ur5e' in meta['tags']
    assert meta['gato_ros'] | {'control_hz': None} == {
        'robots': ['ur5e'], 'tasks': {'green,red': 2, 'red,blue': 1}, 'episodes': 3, 'successful': 1,
        'drivers': {'expert': 3}, 'seeds': [0, 4], 'control_hz': None, 'cameras': list(CAMERAS), 'image_size': 32,
        'steps': 26}
    assert '| ur5e | green on red | expert | 2 | 0 |' in card and '--task green,red' in card
    episodes = load_episodes(tmp_path)
    assert [(e.info.seed, e.info.task) for e in episodes][:2] == [(0, ('green', 'red')), (1, ('green', 'red'))]
    ep = episodes[0]
    assert ep.info.steps == len(ep) == 10 and ep.images['front_left'].shape == (10, 32, 32, 3)
    assert ep.info.success is False            # 1 s is too short to stack: recorded anyway, flagged
    assert len(EpisodeDataset(episodes[:2], DatasetConfig(context=256))) > 0


def _source(seq, start=0):
    """(episode seed, timestep) of each timestep's first image patch (pixels encode 20 * seed + t)."""
    pixels = np.round((seq.patches[:, 0, 0, 0] * 4 + 1) * 255 / 2).astype(int)
    bounds = seq.timestep_bounds()
    patch_at = np.cumsum(seq.tokens == PATCH_PLACEHOLDER) - 1
    return [divmod(int(pixels[patch_at[bounds[t]]]), 20) for t in range(start, seq.num_timesteps)]


def test_dataset_windows_prompts_and_loss_mask():
    episodes = [synthetic_episode(s) for s in range(3)] + [synthetic_episode(5, task=('green', 'red'))]
    config = DatasetConfig(context=160, prompt_prob=0.25, seed=7)
    ds = EpisodeDataset(episodes, config)
    per_step = ds.episodes[0].tokens_per_timestep            # 2 patches + 6 joints + 6 tool + '|' + 5 actions
    assert per_step == 20
    prompted = from_end = 0
    n = 400
    for i in range(n):
        seq = ds[(i // len(ds), i % len(ds))].sequence
        episode, start = ds.windows[i % len(ds)]
        own_seed = ds.episodes[episode].episode.info.seed
        assert len(seq) <= config.context and len(seq) % per_step == 0    # whole timesteps only
        sources = _source(seq)
        n_prompt = sum(s != own_seed for s, _ in sources)
        prompt, window = sources[:n_prompt], sources[n_prompt:]
        assert window == [(own_seed, start + k) for k in range(len(window))]  # prompt first, then the crop
        action_mask = seq.loss_mask.reshape(-1, per_step)
        assert not action_mask[:n_prompt].any()                              # prompts are not targets
        assert action_mask[n_prompt:, -5:].all() and not action_mask[n_prompt:, :-5].any()
        if prompt:
            prompted += 1
            peer = {s for s, _ in prompt}
            assert len(peer) == 1 and peer != {own_seed} and peer <= {0, 1, 2}  # another episode, same task
            assert [t for _, t in prompt] == list(range(prompt[0][1], prompt[0][1] + n_prompt))
            assert n_prompt == 4 and len(window) == 4          # prompt_fraction 0.5 of 8 timesteps
            from_end += prompt[-1][1] == 11
        else:
            assert len(window) == 8
    # Seed 5 is alone in its task, so it never gets a prompt: 25% of the other 3/4 of the windows.
    assert 0.12 < prompted / n < 0.26
    assert 0.3 < from_end / prompted < 0.85   # half end-of-episode, half uniform (which ends there 1 in 9)
    # reproducible per (epoch, index)
    np.testing.assert_array_equal(ds[(1, 3)].sequence.tokens, ds[(1, 3)].sequence.tokens)
    assert len({len(ds[(epoch, 0)].sequence) for epoch in range(20)}) == 1       # prompt or not: same total length


def test_demonstration_prompt_is_the_end_of_the_episode():
    prompt = demonstration_prompt(synthetic_episode(2), tokens=70)
    assert prompt.num_timesteps == 3 and not prompt.loss_mask.any()
    assert [t for _, t in _source(prompt)] == [9, 10, 11]


def test_collate_pads_right_and_keeps_patch_order():
    ds = EpisodeDataset([synthetic_episode(s, steps=4) for s in (1, 2)], DatasetConfig(context=60, prompt_prob=0))
    a, b = ds[0].sequence, ds[len(ds) - 1].sequence
    short = a.select_timesteps(0, 1)
    batch = collate([short, b])
    assert batch['tokens'].shape == (2, len(b))
    assert (batch['local_pos'][0, len(short):] == -1).all() and not batch['loss_mask'][0, len(short):].any()
    np.testing.assert_array_equal(batch['patches'].numpy(), np.concatenate([short.patches, b.patches]))


def test_dagger_share_repeats_the_policy_driven_windows():
    """Retraining on demos + DAgger: the rollouts' timesteps are repeated to about the asked share; demos stay once."""
    import dataclasses
    demos = [synthetic_episode(s, steps=12) for s in range(9)]                                 # 108 windows
    rollout = synthetic_episode(9, steps=12)
    rollout = dataclasses.replace(rollout, info=dataclasses.replace(rollout.info, driver='policy'))  # 12 windows
    config = DatasetConfig(context=20, prompt_prob=0)                                        # one timestep each
    assert len(EpisodeDataset(demos + [rollout], config)) == 120
    ds = EpisodeDataset(demos + [rollout], dataclasses.replace(config, policy_share=0.5))
    assert ds.policy_repeats == 9 and len(ds) == 108 + 9 * 12
    sources = [_source(ds[i].sequence)[0][0] for i in range(len(ds))]                           # episode pixel base
    assert sum(src == 9 for src in sources) == 108                                              # half the windows
    assert sorted({src for src in sources}) == list(range(10))
    assert EpisodeDataset(demos, dataclasses.replace(config, policy_share=0.5)).policy_repeats == 1  # no rollouts
    with pytest.raises(ValueError, match='policy_share'):
        DatasetConfig(policy_share=1.0)


def test_dataset_rejects_a_context_smaller_than_one_timestep():
    with pytest.raises(ValueError, match='context=10'):
        EpisodeDataset([synthetic_episode(1)], DatasetConfig(context=10))
    with pytest.raises(ValueError, match='prompt_prob'):
        DatasetConfig(prompt_prob=1.5)


def test_writer_abort_leaves_no_episode(tmp_path):
    profile = load_profile('ur5e')
    with pytest.raises(RuntimeError):
        with EpisodeWriter(tmp_path / 'x', 'ur5e', ('red', 'blue'), 0, 10.0, CAMERAS, profile.joint_names,
                           profile.gripper_joint_names):
            raise RuntimeError('sim crashed')
    assert list(tmp_path.iterdir()) == []

