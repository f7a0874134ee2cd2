"""Locate the package's data folders (urdf/, config/, checkpoints/) in a source tree or an install."""

import sys
from pathlib import Path

_SOURCE_ROOT = Path(__file__).resolve().parents[1]
_INSTALL_SHARE = Path(sys.prefix) / 'share' / 'gato_ros'


def share_dir() -> Path:
    """The folder that holds urdf/, config/ and launch/: the source tree when run from it, else share/."""
    if (_SOURCE_ROOT / 'package.xml').is_file():
        return _SOURCE_ROOT
    if (_INSTALL_SHARE / 'package.xml').is_file():
        return _INSTALL_SHARE
    raise FileNotFoundError(
        f'gato_ros data folders not found in {_SOURCE_ROOT} or {_INSTALL_SHARE}; '
        'run from the source tree or install the package')


def resource_path(*parts: str) -> Path:
    """Path of a packaged data file, e.g. resource_path('urdf', 'ur5e.urdf'); raises if it is missing."""
    path = share_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f'packaged resource not found: {path}')
    return path
