"""configs/default.toml and the dataclasses' defaults say the same thing.

Each pipeline section is written twice (the TOML a user reads, the dataclass the code runs); a
value changed in one place only would make `make train` and a library caller differ silently.
"""

from __future__ import annotations

import dataclasses
import tomllib

import pytest

from train import config

SECTIONS = config.SECTIONS  # the one registry the loader checks every config against


def field_default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return dataclasses.MISSING


def normal(value):
    if isinstance(value, (list, tuple)):
        return [normal(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def test_every_section_of_default_toml_is_checked():
    assert set(tomllib.loads(config.DEFAULT_FILE.read_text())) == set(SECTIONS)


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_toml_values_equal_dataclass_defaults(name):
    cls = config.section_class(name)
    cls_name = cls.__name__
    fields = {f.name: f for f in dataclasses.fields(cls)}
    written = tomllib.loads(config.DEFAULT_FILE.read_text())[name]
    for key, value in written.items():
        assert key in fields, f"[{name}] {key} is not a field of {cls_name}"
        default = field_default(fields[key])
        assert normal(value) == normal(default), f"[{name}] {key}: default.toml {value!r}, {cls_name} {default!r}"
