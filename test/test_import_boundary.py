"""The core stays ROS-free: no module under gato_ros/core imports rclpy, rosidl or a message package."""

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[1] / 'gato_ros' / 'core'
FORBIDDEN = {
    'rclpy', 'rosidl_runtime_py', 'rosidl_parser', 'rosidl', 'builtin_interfaces', 'sensor_msgs',
    'std_msgs', 'trajectory_msgs', 'std_srvs', 'diagnostic_msgs', 'geometry_msgs',
    'visualization_msgs', 'rosgraph_msgs', 'launch', 'launch_ros', 'ament_index_python',
}


def _imported_roots(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split('.')[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split('.')[0]


def test_core_imports_no_ros():
    files = sorted(CORE.rglob('*.py'))
    assert files, 'gato_ros/core has no modules'
    offenders = [f'{p.relative_to(CORE.parent.parent)}:{line} imports {root}'
                 for p in files for line, root in _imported_roots(p)
                 if root in FORBIDDEN or root.endswith('_msgs') or root.endswith('_srvs')]
    assert not offenders, 'core must stay ROS-free:\n' + '\n'.join(offenders)


def test_boundary_check_detects_a_ros_import(tmp_path):
    bad = tmp_path / 'bad.py'
    bad.write_text('import numpy\nfrom sensor_msgs.msg import Image\n')
    assert (2, 'sensor_msgs') in list(_imported_roots(bad))
