"""Launch files, checked statically (launch/launch_ros are not installable here): every executable is a console
script in setup.py, every referenced file exists and is installed, every YAML/inline parameter is declared, and
every argument passed to an included launch file is declared there."""

import ast
import fnmatch
import itertools
import sys
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from gato_ros.ros import params

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILES = sorted((ROOT / 'launch').glob('*.launch.py'))
NODE_CONFIGS = params.NODE_CONFIGS
# Declared by each launch file itself or by a launch file it includes (which sees the same command line).
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


def _items_dict(node) -> ast.Dict:
    """The dict of launch_arguments={...}.items(), the one form the checks read."""
    if not (_call_name(node) == 'items' and isinstance(node.func.value, ast.Dict)):
        raise AssertionError(f'launch_arguments must be {{...}}.items(), not {ast.unparse(node)}')
    return node.func.value


class LaunchFile:
    """The facts the checks need, read from one launch file's AST.

    given: {argument: values} that the launch files including this one pass in; a LaunchConfiguration in a path
    is resolved for its default and each of these values.
    """

    def __init__(self, source: str, given: dict[str, set[str]] | None = None):
        tree = ast.parse(source)
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)]
        self.given = given or {}
        self.unresolved = set()  # launch configurations in our paths that have no value: no default, no includer
        self.arguments = {c.args[0].value: _kwargs(c) for c in calls if _call_name(c) == 'DeclareLaunchArgument'}
        self.configurations = {c.args[0].value for c in calls if _call_name(c) == 'LaunchConfiguration'}
        self.nodes = [_kwargs(c) for c in calls if _call_name(c) == 'Node']
        self.includes = [c for c in calls if _call_name(c) == 'IncludeLaunchDescription']
        self.paths = [c for c in calls if _call_name(c) == 'PathJoinSubstitution']
        self.share_names = {t.id for n in ast.walk(tree) if isinstance(n, ast.Assign)
                            and _call_name(n.value) == 'FindPackageShare' for t in n.targets}

    def default(self, name):
        value = self.arguments[name].get('default_value')
        return value.value if isinstance(value, ast.Constant) else None

    def values(self, name) -> set[str]:
        """Every value LaunchConfiguration(name) takes here: its default and what includers pass in."""
        default = self.default(name) if name in self.arguments else None
        return ({default} - {None}) | set(self.given.get(name, ()))

    def resolve(self, call) -> list[str] | None:
        """Repo-relative paths of PathJoinSubstitution([FindPackageShare('gato_ros'), ...]), one per value of its
        launch configurations; None if not ours."""
        parts = call.args[0].elts
        head = parts[0]
        ours = (isinstance(head, ast.Name) and head.id in self.share_names) or \
               (_call_name(head) == 'FindPackageShare' and head.args[0].value == 'gato_ros')
        if not ours:
            return None
        return sorted({'/'.join(combo) for combo in itertools.product(*map(self._texts, parts[1:]))})

    def _texts(self, node) -> set[str]:
        if isinstance(node, ast.Constant):
            return {node.value}
        if isinstance(node, ast.List):
            return {''.join(combo) for combo in itertools.product(*map(self._texts, node.elts))}
        if _call_name(node) == 'LaunchConfiguration':
            name = node.args[0].value
            if not self.values(name):
                self.unresolved.add(name)
            return self.values(name)
        raise AssertionError(f'cannot resolve {ast.dump(node)}')

    def included(self) -> list[tuple[str, dict[str, set[str]]]]:
        """(repo-relative path, {argument: values passed}) for each launch file of ours this one includes."""
        found = []
        for call in self.includes:
            source = call.args[0]
            if _call_name(source) == 'PythonLaunchDescriptionSource':
                source = source.args[0]
            passed = _kwargs(call).get('launch_arguments')
            pairs = () if passed is None else zip(_items_dict(passed).keys, _items_dict(passed).values)
            arguments = {key.value: self._texts(value) for key, value in pairs}
            found += [(rel, arguments) for rel in self.resolve(source) or ()]
        return found


def given_arguments() -> dict[str, dict[str, set[str]]]:
    """{repo-relative launch file: {argument: values}} passed in by every launch file that includes it."""
    given = defaultdict(lambda: defaultdict(set))

    def visit(rel, passed):
        for child, arguments in LaunchFile((ROOT / rel).read_text(), passed).included():
            if not (ROOT / child).is_file():
                continue  # check_launch_file reports it
            for name, values in arguments.items():
                given[child][name] |= values
            visit(child, arguments)

    for path in LAUNCH_FILES:
        visit(str(path.relative_to(ROOT)), {})
    return given


def with_includes(launch: LaunchFile) -> list[LaunchFile]:
    """launch and every existing launch file it includes, recursively: what `ros2 launch` starts."""
    children = [LaunchFile((ROOT / rel).read_text(), passed) for rel, passed in launch.included()
                if (ROOT / rel).is_file()]
    return [launch, *(f for child in children for f in with_includes(child))]


def _check_node(launch, node, scripts) -> list[str]:
    package, executable = node['package'].value, node['executable'].value
    if package != 'gato_ros':
        return [] if package in _exec_depends() else \
            [f'Node from package {package!r} is not an exec_depend in package.xml']
    if executable not in scripts:
        return [f'executable {executable!r} is not a console script in setup.py']
    if executable not in NODE_CONFIGS:
        return [f'no parameter config (params.py dataclass) known for node {executable!r}']
    declared = params.declared_names(NODE_CONFIGS[executable])
    problems = []
    for entry in node['parameters'].elts:
        if isinstance(entry, ast.Dict):
            sources = [('inline parameter', {k.value for k in entry.keys})]
        else:
            sources = []
            for rel in launch.resolve(entry):
                if not (ROOT / rel).is_file():
                    continue  # reported as a missing file
                sections = yaml.safe_load((ROOT / rel).read_text())
                ours = [v for k, v in sections.items() if k.split('/')[-1] == executable]
                if not ours:
                    problems.append(f'{rel} has no section for node {executable}')
                    continue
                sources.append((f'{rel} key', set(ours[0]['ros__parameters'])))
        problems += [f'{origin} {key!r} is not a parameter {executable} declares'
                     for origin, keys in sources for key in sorted(keys - declared)]
    return problems


def check_launch_file(source: str, given: dict[str, set[str]] | None = None) -> list[str]:
    """Problems found in one launch file's source (given: what its includers pass in); [] means it passes."""
    launch = LaunchFile(source, given)
    scripts, globs = _setup_py()
    problems = []
    for name, kw in launch.arguments.items():
        desc = kw.get('description')
        if not (isinstance(desc, ast.Constant) and desc.value.strip()):
            problems.append(f'launch argument {name!r} has no description')
    problems += [f'LaunchConfiguration({name!r}) is used but never declared'
                 for name in sorted(launch.configurations - set(launch.arguments))]
    for call in launch.paths:
        for rel in launch.resolve(call) or ():
            if not (ROOT / rel).is_file():
                problems.append(f'referenced file {rel} does not exist')
            elif not any(fnmatch.fnmatch(rel, pattern) for pattern in globs):
                problems.append(f'referenced file {rel} is not installed by setup.py data_files')
    problems += [f'LaunchConfiguration({name!r}) in a path has no default and no includer passes it'
                 for name in sorted(launch.unresolved)]
    for rel, passed in launch.included():
        if not (ROOT / rel).is_file():
            continue  # reported as a missing file
        declared = LaunchFile((ROOT / rel).read_text()).arguments
        problems += [f'launch argument {name!r} passed to {rel} is not declared there'
                     for name in sorted(set(passed) - set(declared))]
    declared = {name for f in with_includes(launch) for name in f.arguments}
    problems += [f'launch argument {name!r} is not declared (here or in an included launch file)'
                 for name in sorted(REQUIRED_ARGUMENTS - declared)]
    problems += [p for node in launch.nodes for p in _check_node(launch, node, scripts)]
    return problems


def _source(name):
    return (ROOT / 'launch' / name).read_text()


def test_every_launch_file_exists():
    assert {p.name for p in LAUNCH_FILES} >= {'arm.launch.py', 'ur5e.launch.py', 'sawyer.launch.py',
                                               'sim.launch.py'}


@pytest.mark.parametrize('path', LAUNCH_FILES, ids=lambda p: p.name)
def test_launch_file_is_consistent(path):
    given = given_arguments()[str(path.relative_to(ROOT))]
    assert check_launch_file(path.read_text(), given) == []


@pytest.mark.parametrize('name, robot, state_publisher',
                         [('ur5e.launch.py', 'ur5e', 'false'), ('sawyer.launch.py', 'sawyer', 'true')])
def test_robot_launch_files_start_arm_with_their_defaults(name, robot, state_publisher):
    launch = LaunchFile(_source(name))
    assert (launch.default('robot'), launch.default('robot_state_publisher')) == (robot, state_publisher)
    assert launch.included() == [('launch/arm.launch.py',
                                  {'robot': {robot}, 'robot_state_publisher': {state_publisher}})]
    executables = {n['executable'].value for f in with_includes(launch) for n in f.nodes}
    assert executables == {'policy_node', 'safety_controller_node', 'robot_state_publisher'}


def test_sim_starts_arm_on_sim_time_with_state_publisher():
    launch = LaunchFile(_source('sim.launch.py'))
    (rel, passed), = launch.included()
    assert rel == 'launch/arm.launch.py'
    assert passed['robot_state_publisher'] == {'true'} and passed['use_sim_time'] == {'true'}
    assert {n['executable'].value for f in with_includes(launch) for n in f.nodes} == \
        {'sim_node', 'policy_node', 'safety_controller_node', 'robot_state_publisher'}


def test_arm_urdf_is_resolved_for_every_robot_that_includes_it():
    arm = LaunchFile(_source('arm.launch.py'), given_arguments()['launch/arm.launch.py'])
    urdfs = {rel for call in arm.paths for rel in arm.resolve(call) if rel.startswith('urdf/')}
    assert urdfs == {'urdf/ur5e.urdf', 'urdf/sawyer.urdf'}
    assert check_launch_file(_source('arm.launch.py')) == \
        ["LaunchConfiguration('robot') in a path has no default and no includer passes it"]


def test_checker_reports_each_kind_of_mistake():
    broken = (_source('arm.launch.py').replace("executable='policy_node'", "executable='policy_nod'")
              .replace("'policy.yaml'", "'policy_missing.yaml'")
              .replace("'command_interface': LaunchConfiguration", "'command_interfaces': LaunchConfiguration")
              .replace("description='torch device: cpu, cuda, cuda:N'", "description=''")
              .replace("'device': LaunchConfiguration('device')", "'device': LaunchConfiguration('devices')"))
    problems = '\n'.join(check_launch_file(broken, {'robot': {'ur5e'}}))
    assert 'config/policy_missing.yaml does not exist' in problems
    assert "launch argument 'device' has no description" in problems
    assert "LaunchConfiguration('devices') is used but never declared" in problems
    assert "executable 'policy_nod' is not a console script" in problems
    assert "inline parameter 'command_interfaces' is not a parameter safety_controller_node declares" in problems


def test_checker_reports_include_mistakes():
    source = _source('ur5e.launch.py')
    problems = check_launch_file(source.replace("'arm.launch.py'", "'arm_missing.launch.py'"))
    assert problems[0] == 'referenced file launch/arm_missing.launch.py does not exist'
    assert "launch argument 'checkpoint' is not declared (here or in an included launch file)" in problems
    problems = check_launch_file(source.replace("'robot_state_publisher': LaunchConfiguration",
                                                "'robot_state_publishers': LaunchConfiguration"))
    assert problems == ["launch argument 'robot_state_publishers' passed to launch/arm.launch.py "
                        'is not declared there']
    without_include = source.split('        IncludeLaunchDescription(')[0] + '    ])\n'
    assert check_launch_file(without_include) == [
        f'launch argument {name!r} is not declared (here or in an included launch file)'
        for name in ('checkpoint', 'command_interface', 'device', 'use_sim_time')]


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
    source = _source('arm.launch.py')
    monkeypatch.setattr(sys.modules[__name__], 'ROOT', tmp_path)
    problems = check_launch_file(source, {'robot': {'ur5e'}})
    assert problems == ["config/policy.yaml key 'rates' is not a parameter policy_node declares"]
