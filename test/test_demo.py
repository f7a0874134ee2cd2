"""`gato-ros demo` end to end: sim_node + policy_node + safety_controller_node over real ROS 2 topics."""

import pytest


@pytest.mark.slow
def test_expert_demo_stacks_through_the_topics(tmp_path, monkeypatch, capsys):
    import imageio.v2 as imageio

    from gato_ros.ros.demo import run as demo

    monkeypatch.setattr(demo, 'default_checkpoint', lambda: None)  # the expert path, even once one is committed
    summary = demo.run_demo(demo.DemoOptions(robot='ur5e', episodes=1, seed=0, out=tmp_path, max_time=30.0))

    assert capsys.readouterr().out.startswith(demo.EXPERT_NOTICE)
    assert summary['mode'] == 'expert' and summary['episodes'] == 1
    assert summary['success_rate'] == 1.0, summary
    episode = summary['per_episode'][0]
    assert episode['commands'] > 100, 'the safety controller commanded the sim on the forward_position topic'
    assert summary['commands_outside_limits'] == 0
    # The first command starts from the reset (ready) pose; the depth-1 command publisher may drop the very
    # first few for a busy subscriber, hence a tolerance of a few ticks' motion.
    assert summary['start_offset_rad_max'] < 0.15
    assert summary['policy_hz'] > 5 and summary['commands']['rate_hz'] > 20
    # Who drove and the live-loop figures (measured, not asserted on time: `gato-ros demo --json` reports them).
    assert summary['driver'] == 'the scripted expert'
    deadline, ticks = summary['policy_deadline'], summary['safety_sim_time']
    assert deadline['deadline_ms'] == 80.0 and deadline['steps'] == summary['policy_latency']['count'] > 0
    assert 0 <= deadline['missed'] <= deadline['steps']
    assert ticks['configured_hz'] == 250.0 and ticks['count'] >= episode['commands'] - 5
    assert ticks['rate_fraction'] == pytest.approx(ticks['rate_hz'] / 250.0, abs=1e-3)
    assert ticks['longest_gap_ticks'] >= 1.0
    assert 0.3 < summary['realtime_factor'] <= 1.1
    frames = imageio.get_reader(summary['video']).count_frames()
    assert frames >= 5 * episode['sim_time'], 'about 10 frames per sim second'
    assert imageio.imread(summary['success_png']).shape == (256, 512, 3)


@pytest.mark.slow
def test_the_committed_checkpoint_drives_the_demo_by_default(tmp_path, capsys):
    """`make demo` without options: the trained checkpoint drives, over the same topics, and says so."""
    from gato_ros.ros.demo import run as demo

    checkpoint = demo.default_checkpoint()
    assert checkpoint is not None and checkpoint.name == 'gato-stack'
    summary = demo.run_demo(demo.DemoOptions(robot='ur5e', episodes=1, seed=1_000_000, out=tmp_path, max_time=30.0))
    assert capsys.readouterr().out.startswith(f'checkpoint {checkpoint}: the trained Gato policy drives the arm')
    assert summary['mode'] == 'checkpoint' and summary['episodes'] == 1
    assert summary['per_episode'][0]['commands'] > 100 and summary['commands_outside_limits'] == 0
