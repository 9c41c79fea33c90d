"""The daemon's configuration: one TOML file (``/etc/wakeword/config.toml`` on a Pi) into
frozen dataclasses, validated at start-up.

Top-level keys (``model``, ``threads``, ``log_level``) and one ``[section]`` per part, each
the dataclass of the module that uses it -- ``[capture]``
(:class:`device.listener.CaptureConfig`), ``[detect]`` (:class:`DetectConfig`), ``[gate]``
(:class:`device.gate.GateConfig`), ``[gpio]`` (:class:`device.outputs.GpioConfig`),
``[hook]`` (:class:`device.outputs.HookConfig`), ``[mqtt]`` (:class:`device.mqtt.MqttConfig`),
``[save]`` (:class:`device.clipsaver.SaveConfig`), ``[snippets]`` (:class:`device.clipsaver.SnippetConfig`),
``[wyoming]`` (:class:`WyomingConfig`). Every key is optional; the docstrings beside the
fields are the reference, ``device/config.example.toml`` the commented example.

Any problem -- unreadable file, bad TOML, unknown key, wrong type, value out of range --
is a :class:`ConfigError` whose message is one line naming the file and the key; the
command line turns it into exit status 2.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from device.clipsaver import SaveConfig, SnippetConfig
from device.configtypes import ConfigError, build, suggest
from device.decision import DEFAULT_REFRACTORY_S, DEFAULT_SMOOTHING_FRAMES, DecisionConfig
from device.gate import GateConfig
from device.listener import CaptureConfig
from device.modelmeta import ModelMeta
from device.mqtt import MqttConfig
from device.outputs import GpioConfig, HookConfig

LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class DetectConfig:
    threshold: float | None = None
    """Detection threshold in (0, 1); absent = the model's calibrated threshold."""
    smoothing_frames: int | None = None
    """Output frames averaged before thresholding (1 = none); absent = what the model's
    threshold was calibrated with (its metadata), else 1."""
    refractory_s: float | None = None
    """Minimum time between two detections (s); absent = the model's calibration, else 2.0."""

    def __post_init__(self) -> None:
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.smoothing_frames is not None and self.smoothing_frames < 1:
            raise ValueError(f"smoothing_frames must be >= 1, got {self.smoothing_frames}")
        if self.refractory_s is not None and self.refractory_s < 0:
            raise ValueError(f"refractory_s must be >= 0, got {self.refractory_s}")

    def resolve(self, meta: ModelMeta) -> DecisionConfig:
        """The decision rule to run: these values where set, else the model's calibration."""
        calib = meta.calibration.get("decision") if isinstance(meta.calibration.get("decision"), dict) else {}

        def pick(mine, key, default):
            return mine if mine is not None else type(default)(calib.get(key, default))

        try:
            return DecisionConfig(
                threshold=self.threshold if self.threshold is not None else meta.threshold,
                smoothing_frames=pick(self.smoothing_frames, "smoothing_frames", DEFAULT_SMOOTHING_FRAMES),
                refractory_s=pick(self.refractory_s, "refractory_s", DEFAULT_REFRACTORY_S),
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"decision settings from the model's calibration are unusable: {exc}") from None


@dataclass(frozen=True)
class WyomingConfig:
    uri: str = "tcp://0.0.0.0:10400"
    """Where ``wakeword wyoming`` listens (``--uri`` overrides): ``tcp://HOST:PORT`` or ``unix:///PATH``."""
    models: tuple[str, ...] = ()
    """Extra keyword models served beside ``model`` (paths of ``model.onnx`` files)."""
    zeroconf: bool = True
    """Announce the service on the local network (mDNS ``_wyoming._tcp``), so Home Assistant lists
    it under Discovered (:mod:`device.announce`); tcp:// only. ``--no-zeroconf`` turns it off."""
    zeroconf_name: str = ""
    """The name announced (default ``wakeword-<hostname>``); Home Assistant keys the service by it."""

    def __post_init__(self) -> None:
        from urllib.parse import urlparse

        if self.zeroconf_name:
            from device.announce import check_name

            check_name(self.zeroconf_name)

        try:
            uri = urlparse(self.uri)
            port = uri.port if uri.scheme == "tcp" else None
        except ValueError:
            raise ValueError(f"uri {self.uri!r} is not tcp://HOST:PORT or unix:///PATH") from None
        if (
            uri.scheme not in ("tcp", "unix")
            or (uri.scheme == "tcp" and (not uri.hostname or port is None))
            or (uri.scheme == "unix" and not uri.path)
        ):
            raise ValueError(f"uri {self.uri!r} is not tcp://HOST:PORT or unix:///PATH")


@dataclass(frozen=True)
class KeywordConfig:
    """One more keyword beside ``model`` (a ``[[keywords]]`` table), with its own actions."""

    model: str = ""
    """Path of this keyword's ``model.onnx`` (required)."""
    detect: DetectConfig = field(default_factory=DetectConfig)
    """``[keywords.detect]``: its threshold etc. (left out: its model's calibration)."""
    gpio: GpioConfig | None = None
    """``[keywords.gpio]``: its own LED/buzzer pin; left out: it lights the main ``[gpio]`` one."""
    hook: HookConfig = field(default_factory=HookConfig)
    """``[keywords.hook]``: its own command (none unless set)."""

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model is required (the path of this keyword's model.onnx)")


MAX_KEYWORDS = 8
"""Keywords one daemon runs at most (each costs one model step per audio step)."""


@dataclass(frozen=True)
class DaemonConfig:
    model: str = ""
    """Path of the model file (``--model`` overrides), e.g. ``/opt/wakeword/current/model.onnx``."""
    threads: int = 1
    """onnxruntime intra-op threads (1 leaves the Pi's other cores alone)."""
    log_level: str = "info"
    """``debug``, ``info``, ``warning`` or ``error``."""
    keywords: tuple[KeywordConfig, ...] = ()
    """More keywords in the same daemon (``[[keywords]]`` tables): one capture, one step loop."""
    capture: CaptureConfig = field(default_factory=CaptureConfig)
    detect: DetectConfig = field(default_factory=DetectConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    hook: HookConfig = field(default_factory=HookConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    save: SaveConfig = field(default_factory=SaveConfig)
    snippets: SnippetConfig = field(default_factory=SnippetConfig)
    wyoming: WyomingConfig = field(default_factory=WyomingConfig)

    def __post_init__(self) -> None:
        if not 1 <= self.threads <= 64:
            raise ValueError(f"threads must be 1..64, got {self.threads}")
        if len(self.keywords) >= MAX_KEYWORDS:
            raise ValueError(f"at most {MAX_KEYWORDS} keywords in one daemon ({len(self.keywords) + 1} given)")
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level must be one of {', '.join(LOG_LEVELS)}, got {self.log_level!r}")


SECTIONS = {f.name: f for f in dataclasses.fields(DaemonConfig) if dataclasses.is_dataclass(f.default_factory)}


def from_dict(data: dict[str, Any], source: str = "config") -> DaemonConfig:
    """Build and validate a :class:`DaemonConfig` from parsed TOML."""
    top = {k: v for k, v in data.items() if not isinstance(v, dict)}
    sections = {}
    for name, values in data.items():
        if not isinstance(values, dict):
            continue
        if name == "keywords":
            raise ConfigError(f"{source}: write [[keywords]] (double brackets), one table per extra keyword")
        if name not in SECTIONS:
            raise ConfigError(f"{source}: unknown section [{name}]{suggest(name, SECTIONS)}")
        sections[name] = build(typing.get_type_hints(DaemonConfig)[name], values, f"{source} [{name}]")
    for key in top:
        if key in SECTIONS:
            raise ConfigError(f"{source}: {key} must be a [{key}] section")
    base = build(DaemonConfig, top, source, skip=SECTIONS)
    return dataclasses.replace(base, **sections)


def load(path: str | Path | None) -> DaemonConfig:
    """Read ``path`` (None: all defaults)."""
    if path is None:
        return DaemonConfig()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return from_dict(data, str(path))


def override(cfg: DaemonConfig, section: str | None, source: str = "command line", **values: Any) -> DaemonConfig:
    """``cfg`` with some values replaced (None values are ignored), validated again."""
    values = {k: v for k, v in values.items() if v is not None}
    if not values:
        return cfg
    bad = [k for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{source}: {bad[0]} must be a finite number, got {values[bad[0]]!r}")
    try:
        if section is None:
            return dataclasses.replace(cfg, **values)
        return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)})
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None
