"""Dataclasses from JSON: refuse unknown keys, so a typo in a config or checkpoint is an error, not a default."""

from collections.abc import Mapping
from dataclasses import fields


def from_known_fields(cls, d: Mapping, error: type[Exception] = ValueError):
    """cls(**d), raising `error` that names every key of `d` that is not a field of the dataclass `cls`."""
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise error(f'{cls.__name__}: unknown field(s) {unknown}; known: {sorted(known)}')
    return cls(**d)
