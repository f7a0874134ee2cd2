"""Installed like a ROS package: `setup.py install --prefix P` (what colcon runs for ament_python), then
policy_node started from P with only AMENT_PREFIX_PATH and PYTHONPATH pointing there, finds its robot profile,
URDF and the installed checkpoint through the ament index and steps over real rclpy."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

from gato_ros import resources

ROOT = Path(__file__).resolve().parents[1]
STARTUP = 90.0  # s: torch import and checkpoint load on a busy 2-core machine (the whole test: 12 s idle)


def install(prefix: Path, build: Path) -> None:
    build.mkdir()
    done = subprocess.run(
        [sys.executable, 'setup.py', '--quiet', 'egg_info', '--egg-base', str(build), 'build', '--build-base',
         str(build / 'build'), 'install', '--prefix', str(prefix), '--record', str(build / 'files.txt'),
         '--single-version-externally-managed'], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_share_dir_comes_from_the_ament_index(tmp_path, monkeypatch):
    prefix = tmp_path / 'prefix'
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages').mkdir(parents=True)
    (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'gato_ros').touch()
    (prefix / 'share' / 'gato_ros').mkdir()
    monkeypatch.setattr(resources, '_SOURCE_ROOT', tmp_path / 'site-packages')  # not a source tree
    monkeypatch.setenv('AMENT_PREFIX_PATH', f'/nonexistent{os.pathsep}{prefix}')
    assert resources.share_dir() == prefix / 'share' / 'gato_ros'
    monkeypatch.delenv('AMENT_PREFIX_PATH')
    with pytest.raises(FileNotFoundError, match=r"not in the ament index \(AMENT_PREFIX_PATH=''\)"):
        resources.share_dir()


def test_policy_node_runs_from_an_install_prefix(tmp_path):
    prefix = tmp_path / 'install'
    install(prefix, tmp_path / 'build')
    share = prefix / 'share' / 'gato_ros'
    assert (prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'gato_ros').is_file()
    for folder in (ROOT / 'checkpoints').iterdir():  # one folder per checkpoint, nothing flattened
        files = sorted(f.name for f in folder.iterdir() if f.is_file())
        assert sorted(f.name for f in (share / 'checkpoints' / folder.name).iterdir()) == files
    assert not [f for f in (share / 'checkpoints').iterdir() if f.is_file()]
    assert (share / 'rviz' / 'gato_ros.rviz').is_file()

    site = prefix / 'lib' / f'python{sys.version_info.major}.{sys.version_info.minor}' / 'site-packages'
    env = {**os.environ, 'AMENT_PREFIX_PATH': str(prefix), 'PYTHONPATH': str(site), 'OMP_NUM_THREADS': '1'}
    where = subprocess.run([sys.executable, '-c', 'from gato_ros import resources as r; print(r.__file__); '
                            'print(r.share_dir())'], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(site / 'gato_ros' / 'resources.py'), str(share)]

    checkpoint = share / 'checkpoints' / 'gato-stack'
    log = tmp_path / 'policy_node.log'
    node_proc = subprocess.Popen([str(prefix / 'lib' / 'gato_ros' / 'policy_node'), '--ros-args',
                                  '-p', f'checkpoint:={checkpoint}', '-p', 'robot:=ur5e'],
                                 cwd=tmp_path, env=env, stdout=log.open('w'), stderr=subprocess.STDOUT)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node('install_test', context=context)
    statuses = []
    node.create_subscription(String, '/gato/policy_node/status', lambda m: statuses.append(m.data), 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + STARTUP
        while not statuses and node_proc.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.1)
        assert statuses, f'no status from the installed policy_node:\n{log.read_text()}'
        assert statuses[-1].startswith('WAITING_FOR_INPUT: no message yet'), statuses[-1]
    finally:
        if node_proc.poll() is None:
            node_proc.send_signal(signal.SIGINT)
        code = node_proc.wait(timeout=30)
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
    assert code == 0, log.read_text()
    assert 'ur5e: 10 Hz' in log.read_text()
