"""Typed configuration tables: a TOML table (or ``--set`` values) into a frozen dataclass, every value
checked against the field's type hint -- numbers finite, whole numbers whole, lists of the right
items, nested tables as their own dataclasses -- and every problem one :class:`ConfigError` line
naming the key. The daemon's config (:mod:`device.config`) and the training stages' (:mod:`train.config`)
both build their sections here."""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value; the message is one line naming the file or section and the key."""


def closest(name: str, known: typing.Iterable[str]) -> str | None:
    """The known name nearest to a mistyped ``name``, if one is near."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return close[0] if close else None


def suggest(name: str, known: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, else ``""``."""
    near = closest(name, known)
    return f" (did you mean {near!r}?)" if near else ""


def coerce(value: Any, hint: Any, where: str) -> Any:
    """Check a TOML value against a field type hint; returns the value in that type."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return coerce(value, inner[0], where)
    if origin is tuple:
        if isinstance(value, str) and args[0] is str:  # `--set bench.real_exclude_speakers=a,b`
            value = [v.strip() for v in value.split(",") if v.strip()]
        elif isinstance(value, (int, float)) and args[0] in (int, float):  # `--set bench.latency_hops_s=0.1`
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        return tuple(
            coerce(v, args[0], f"{where}[{i}]" if dataclasses.is_dataclass(args[0]) else where)
            for i, v in enumerate(value)
        )
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(value, dict):
            raise ConfigError(f"{where} must be a table, got {value!r}")
        return build(hint, value, where)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, float) and value.is_integer():  # 4000.0 from a --set is 4000
            return int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be a whole number, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    raise TypeError(f"unsupported config field type {hint!r}")


def build(cls: type, values: dict[str, Any], where: str, skip: typing.Iterable[str] = ()) -> Any:
    """Dataclass ``cls`` from ``values`` (its fields but ``skip``); ``where`` opens every message."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)} - set(skip)
    kwargs = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(f"{where}: unknown key {key!r}{suggest(key, fields)}")
        kwargs[key] = coerce(value, hints[key], f"{where} {key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None
