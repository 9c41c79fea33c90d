"""Configuration: TOML files layered in order, then ``--set section.key=value`` overrides.

Each part of the pipeline owns one TOML section and one frozen dataclass for it
(:data:`SECTIONS`). :func:`section` turns a section into its dataclass and rejects unknown keys,
wrong types and values out of range with one clear line; :func:`load` does that for every
section at once, so a stage stops on a bad configuration before it does any work. The resolved
config (all sections after overrides) is written next to every artifact it produced.
"""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from device.configtypes import ConfigError, build, closest

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_FILE = CONFIG_DIR / "default.toml"
QUICK_FILE = CONFIG_DIR / "quick.toml"


SECTIONS = {
    "audio": "device.params:AudioParams",
    "data": "train.dataconfig:DataConfig",
    "model": "train.model:ModelConfig",
    "train": "train.train:TrainConfig",
    "streams": "train.streams:StreamConfig",
    "export": "export.config:ExportConfig",
    "bench": "bench.config:BenchConfig",
}
"""Every section a pipeline config may hold, and the dataclass that owns it (imported when checked)."""


def section_class(name: str) -> type:
    import importlib

    module, _, cls = SECTIONS[name].partition(":")
    return getattr(importlib.import_module(module), cls)


def check(cfg: dict[str, dict[str, Any]]) -> None:
    """Every section known and every value valid for its dataclass, else one :class:`ConfigError`."""
    for name in cfg:
        if name not in SECTIONS:
            near = closest(name, SECTIONS)
            raise ConfigError(
                f"unknown section [{name}]"
                + (f" (did you mean [{near}]?)" if near else "")
                + f"; known: {', '.join(SECTIONS)}"
            )
    for name in SECTIONS:
        section(cfg, name, section_class(name))


def load(
    files: list[str | Path] | None = None, overrides: list[str] | None = None, quick: bool = False
) -> dict[str, dict[str, Any]]:
    """Read ``default.toml`` (+ ``quick.toml`` if ``quick``), then ``files``, then overrides."""
    layers = [DEFAULT_FILE] + ([QUICK_FILE] if quick else []) + [Path(f) for f in files or []]
    cfg: dict[str, dict[str, Any]] = {}
    for path in layers:
        try:
            data = tomllib.loads(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        merge(cfg, data, str(path))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or "." not in key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        sec, name = key.strip().split(".", 1)
        cfg.setdefault(sec, {})[name] = parse_value(raw.strip())
    check(cfg)
    return cfg


def merge(into: dict, data: dict, source: str) -> None:
    for sec, values in data.items():
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: top-level key {sec!r} must be a [section]")
        into.setdefault(sec, {}).update(values)


def parse_value(raw: str) -> Any:
    """``--set`` values: TOML-ish literals (numbers, true/false, quoted strings, lists) or bare strings."""
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def section(cfg: dict[str, dict[str, Any]], name: str, cls: type[T]) -> T:
    """Build dataclass ``cls`` from section ``name``: unknown keys, wrong types, non-finite numbers and
    values its checks refuse are one :class:`ConfigError` (the daemon's config is read the same way)."""
    return build(cls, dict(cfg.get(name, {})), f"[{name}]")


def dump_json(cfg: dict, path: str | Path) -> None:
    """Write the resolved config as JSON (atomically)."""
    from device.fsutil import atomic_write_text

    atomic_write_text(path, json.dumps(cfg, indent=2, sort_keys=True) + "\n")
