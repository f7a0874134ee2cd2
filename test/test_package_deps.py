"""package.xml matches the code: every import of gato_ros/ and launch/ is an <exec_depend> (or, having no rosdep
key, is listed in docs/ros.md and pinned in requirements.txt), every test import is an exec or test dependency,
and nothing is declared that the code does not use."""

import ast
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# import name -> rosdep key (ROS packages: the package name)
ROSDEP_KEYS = {
    'rclpy': 'rclpy', 'rcl_interfaces': 'rcl_interfaces', 'builtin_interfaces': 'builtin_interfaces',
    'sensor_msgs': 'sensor_msgs', 'std_msgs': 'std_msgs', 'std_srvs': 'std_srvs',
    'trajectory_msgs': 'trajectory_msgs', 'diagnostic_msgs': 'diagnostic_msgs', 'rosgraph_msgs': 'rosgraph_msgs',
    'visualization_msgs': 'visualization_msgs', 'geometry_msgs': 'geometry_msgs',
    'ament_index_python': 'ament_index_python', 'launch': 'launch', 'launch_ros': 'launch_ros',
    'pinocchio': 'pinocchio', 'numpy': 'python3-numpy', 'cv2': 'python3-opencv', 'yaml': 'python3-yaml',
    'torch': 'python3-torch', 'mujoco': 'python3-mujoco-pip',
    'tqdm': 'python3-tqdm', 'imageio': 'python3-imageio', 'matplotlib': 'python3-matplotlib',
    'pytest': 'python3-pytest', 'hypothesis': 'python3-hypothesis', 'transforms3d': 'python3-transforms3d',
}
# import name -> pip requirement, for the imports that rosdep has no key for (docs/ros.md, "Dependencies")
PIP_ONLY = {'safetensors': 'safetensors', 'sentencepiece': 'sentencepiece', 'mcap': 'mcap', 'rosbags': 'rosbags'}
# declared, used otherwise than by an import
LAUNCHED = {'robot_state_publisher'}              # an executable started by launch/arm.launch.py
TEST_PLUGINS = {'python3-pytest-timeout'}          # setup.cfg's `timeout`
FIRST_PARTY = {'gato_ros', 'ros_helpers'}


def imports(*folders: str) -> dict[str, str]:
    """Top-level third-party module -> first file importing it."""
    found = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob('*.py')):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    root = name.split('.')[0]
                    if root not in sys.stdlib_module_names and root not in FIRST_PARTY:
                        found.setdefault(root, str(path.relative_to(ROOT)))
    return found


def declared(tag: str) -> set[str]:
    return {e.text.strip() for e in ET.parse(ROOT / 'package.xml').getroot().iter(tag)}


def test_every_runtime_import_is_declared():
    runtime = imports('gato_ros', 'launch')
    unknown = {m: f for m, f in runtime.items() if m not in ROSDEP_KEYS and m not in PIP_ONLY}
    assert not unknown, f'imports with no rosdep key mapping in {__file__}: {unknown}'
    missing = {ROSDEP_KEYS[m]: f for m, f in runtime.items()
               if m in ROSDEP_KEYS and ROSDEP_KEYS[m] not in declared('exec_depend')}
    assert not missing, f'package.xml lacks <exec_depend> for (key: first importer) {missing}'


def test_nothing_unused_is_declared():
    used = {ROSDEP_KEYS[m] for m in imports('gato_ros', 'launch') if m in ROSDEP_KEYS}
    assert declared('exec_depend') - used == LAUNCHED
    for key in LAUNCHED:
        assert f"package='{key}'" in (ROOT / 'launch' / 'arm.launch.py').read_text()
    tests = {ROSDEP_KEYS[m] for m in imports('test') if m in ROSDEP_KEYS}
    assert not tests - declared('exec_depend') - declared('test_depend'), 'a test import is not declared'
    assert declared('test_depend') - tests == TEST_PLUGINS
    assert 'timeout' in (ROOT / 'setup.cfg').read_text()


def test_pip_only_dependencies_are_documented_and_pinned():
    runtime = imports('gato_ros', 'launch')
    docs = (ROOT / 'docs' / 'ros.md').read_text()
    requirements = (ROOT / 'requirements.txt').read_text()
    for module, requirement in PIP_ONLY.items():
        assert module in runtime, f'{module} is listed as a dependency but nothing imports it'
        assert f'`{requirement}`' in docs, f'docs/ros.md does not list {requirement} among the dependencies'
        assert re.search(rf'^{re.escape(requirement)}==\S+$', requirements, re.M), f'{requirement} is not pinned'
