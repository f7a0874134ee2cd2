"""Launch files, checked statically (launch/launch_ros are not installable here): every executable is a console
script in setup.py, every referenced file exists and is installed, every YAML/inline parameter is declared."""

import ast
import fnmatch
import sys
from pathlib import Path

import pytest
import yaml

from gato_ros.ros import params
from gato_ros.ros.nodes.sim_node import SimNodeConfig

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
NODE_CONFIGS = {**params.NODE_CONFIGS, 'sim_node': SimNodeConfig}
REQUIRED_ARGUMENTS = {'robot', 'checkpoint', 'device', 'use_sim_time', 'command_interface'}


def _call_name(node):
    if isinstance(node, ast.Call):
        return node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, 'id', None)
    return None


def _kwargs(call):
    return {k.arg: k.value for k in call.keywords}


def _setup_py():
    """(console script names, data_files glob patterns) from setup.py."""
    tree = ast.parse((ROOT / 'setup.py').read_text())
    scripts = {n.value.split('=')[0].strip() for n in ast.walk(tree)
               if isinstance(n, ast.Constant) and isinstance(n.value, str) and ' = gato_ros.' in n.value}
    globs = {n.args[0].value for n in ast.walk(tree) if _call_name(n) == 'glob'}
    return scripts, globs


def _exec_depends():
    text = (ROOT / 'package.xml').read_text()
    return {part.split('</exec_depend>')[0] for part in text.split('<exec_depend>')[1:]}


class LaunchFile:
    """The facts the checks need, read from one launch file's AST."""

    def __init__(self, source: str):
        tree = ast.parse(source)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        self.arguments = {c.args[0].value: _kwargs(c) for c in calls if _call_name(c) == 'DeclareLaunchArgument'}
        self.configurations = {c.args[0].value for c in calls if _call_name(c) == 'LaunchConfiguration'}
        self.nodes = [_kwargs(c) for c in calls if _call_name(c) == 'Node']
        self.paths = [c for c in calls if _call_name(c) == 'PathJoinSubstitution']
        self.share_names = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
                            and _call_name(n.value) == 'FindPackageShare' for t in n.targets}

    def default(self, name):
        value = self.arguments[name].get('default_value')
        return value.value if isinstance(value, ast.Constant) else None

    def path(self, call) -> str | None:
        """Repo-relative path of PathJoinSubstitution([FindPackageShare('gato_ros'), ...]); None if not ours."""
        parts = call.args[0].elts
        head = parts[0]
        ours = (isinstance(head, ast.Name) and head.id in self.share_names) or \
               (_call_name(head) == 'FindPackageShare' and head.args[0].value == 'gato_ros')
        return '/'.join(self._text(p) for p in parts[1:]) if ours else None

    def _text(self, node) -> str:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.List):
            return ''.join(self._text(e) for e in node.elts)
        if _call_name(node) == 'LaunchConfiguration':
            return self.default(node.args[0].value)
        raise AssertionError(f'cannot resolve path part {ast.dump(node)}')


def check_launch_file(source: str) -> list[str]:
    """Problems found in one launch file's source; an empty list means it passes."""
    launch = LaunchFile(source)
    scripts, globs = _setup_py()
    problems = [f'launch argument {name!r} is not declared' for name in REQUIRED_ARGUMENTS - set(launch.arguments)]
    for name, kw in launch.arguments.items():
        desc = kw.get('description')
        if not (isinstance(desc, ast.Constant) and desc.value.strip()):
            problems.append(f'launch argument {name!r} has no description')
    problems += [f'LaunchConfiguration({name!r}) is used but never declared'
                 for name in launch.configurations - set(launch.arguments)]
    for call in launch.paths:
        rel = launch.path(call)
        if rel is None:
            continue
        if not (ROOT / rel).is_file():
            problems.append(f'referenced file {rel} does not exist')
        elif not any(fnmatch.fnmatch(rel, pattern) for pattern in globs):
            problems.append(f'referenced file {rel} is not installed by setup.py data_files')
    for node in launch.nodes:
        package, executable = node['package'].value, node['executable'].value
        if package != 'gato_ros':
            if package not in _exec_depends():
                problems.append(f'Node from package {package!r} is not an exec_depend in package.xml')
            continue
        if executable not in scripts:
            problems.append(f'executable {executable!r} is not a console script in setup.py')
            continue
        if executable not in NODE_CONFIGS:
            problems.append(f'no parameter config (params.py dataclass) known for node {executable!r}')
            continue
        declared = params.declared_names(NODE_CONFIGS[executable])
        for entry in node['parameters'].elts:
            if isinstance(entry, ast.Dict):
                keys = {k.value for k in entry.keys}
                origin = 'inline parameter'
            else:
                rel = launch.path(entry)
                sections = yaml.safe_load((ROOT / rel).read_text())
                ours = [v for k, v in sections.items() if k.split('/')[-1] == executable]
                if not ours:
                    problems.append(f'{rel} has no section for node {executable}')
                    continue
                keys = set(ours[0]['ros__parameters'])
                origin = f'{rel} key'
            problems += [f'{origin} {key!r} is not a parameter {executable} declares'
                         for key in sorted(keys - declared)]
    return problems


def test_every_launch_file_exists():
    assert {p.name for p in LAUNCH_FILES} >= {'ur5e.launch.py', 'sawyer.launch.py', 'sim.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path):
    assert check_launch_file(path.read_text()) == []


def test_robot_launch_files_start_both_nodes_and_state_publisher():
    for name in ('ur5e.launch.py', 'sawyer.launch.py'):
        executables = {n['executable'].value for n in LaunchFile((ROOT / 'launch' / name).read_text()).nodes}
        assert executables == {'policy_node', 'safety_controller_node', 'robot_state_publisher'}, name


def test_checker_reports_each_kind_of_mistake():
    source = (ROOT / 'launch' / 'ur5e.launch.py').read_text()
    broken = (source.replace("executable='policy_node'", "executable='policy_nod'")
                    .replace("'policy.yaml'", "'policy_missing.yaml'")
                    .replace("'command_interface': LaunchConfiguration", "'command_interfaces': LaunchConfiguration")
                    .replace("description='torch device: cpu, cuda, cuda:N'", "description=''"))
    problems = '\n'.join(check_launch_file(broken))
    assert "executable 'policy_nod' is not a console script" in problems
    assert 'config/policy_missing.yaml does not exist' in problems
    assert "inline parameter 'command_interfaces' is not a parameter safety_controller_node declares" in problems
    assert "launch argument 'device' has no description" in problems


def test_yaml_keys_are_checked_against_params_py(tmp_path, monkeypatch):
    config = tmp_path / 'config'
    config.mkdir()
    text = (ROOT / 'config' / 'policy.yaml').read_text().replace('rate: 10.0', 'rates: 10.0')
    (config / 'policy.yaml').write_text(text)
    for name in ('safety_controller.yaml',):
        (config / name).write_text((ROOT / 'config' / name).read_text())
    (tmp_path / 'urdf').mkdir()
    (tmp_path / 'urdf' / 'ur5e.urdf').write_text('<robot name="ur5e"/>')
    (tmp_path / 'setup.py').write_text((ROOT / 'setup.py').read_text())
    (tmp_path / 'package.xml').write_text((ROOT / 'package.xml').read_text())
    source = (ROOT / 'launch' / 'ur5e.launch.py').read_text()
    monkeypatch.setattr(sys.modules[__name__], 'ROOT', tmp_path)
    problems = check_launch_file(source)
    assert problems == ["config/policy.yaml key 'rates' is not a parameter policy_node declares"]
