"""Locate the package's data folders (urdf/, config/, launch/, checkpoints/): the source tree or the ament index.

Installed (colcon, or `setup.py install --prefix P` with P on AMENT_PREFIX_PATH), the data lives in
`<prefix>/share/gato_ros`, found through ament_index_python like any ROS 2 package's share directory. Run from a
source checkout (the venv's editable install), the code and its data come from the same tree.
"""

import os
from pathlib import Path

PACKAGE = 'gato_ros'
_SOURCE_ROOT = Path(__file__).resolve().parents[1]


def share_dir() -> Path:
    """The folder that holds urdf/, config/, launch/ and checkpoints/."""
    if (_SOURCE_ROOT / 'package.xml').is_file():
        return _SOURCE_ROOT
    # Imported here: in the source tree (and so in the pure core's tests) nothing ROS is needed.
    from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

    try:
        return Path(get_package_share_directory(PACKAGE, print_warning=False))
    except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset
        raise FileNotFoundError(
            f'{PACKAGE} data folders not found: not in a source tree ({_SOURCE_ROOT}) and not in the ament index '
            f"(AMENT_PREFIX_PATH={os.environ.get('AMENT_PREFIX_PATH', '')!r}); source the install's setup.bash "
            'or add its prefix to AMENT_PREFIX_PATH') from None


def resource_path(*parts: str) -> Path:
    """Path of a packaged data file, e.g. resource_path('urdf', 'ur5e.urdf'); raises if it is missing."""
    path = share_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f'packaged resource not found: {path}')
    return path
