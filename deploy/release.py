"""Build a release: the directory `make deploy` copies to a Pi (standard library only).

A release holds everything the Pi needs except what it installs itself (Debian packages and a
virtual environment)::

    <id>/
      RELEASE            id, keyword, model version, where it came from (not hashed)
      MANIFEST.sha256    sha256sum of every file below; the id is the hash of this file
      bin/wakeword       launcher: this release's code on the shared venv's python
      lib/device/        the daemon's package (a copy of device/)
      model.onnx         the exported model
      models/            more keyword models (``--extra-model``, ``MODELS=``), run beside it ([[keywords]])
      config.toml        installed as /etc/wakeword/config.toml only where none exists
      requirements.lock  the `device` extra of pyproject.toml minus what Debian provides, pinned:
                         exact versions and wheel sha256s (deploy/requirements.lock, `make lock`)
      requirements-gpio.lock  rpi-lgpio, pinned the same way (boards whose GPIO comes from pip)
      wakeword.service   the systemd unit of the daemon (LED, hook)
      wakeword-wyoming.service  the Wyoming service for Home Assistant
      pi/                the scripts run on the Pi (install.sh, platform.sh, undeploy.sh)

The id is derived from the content, so building the same inputs again gives the same id and
deploying it again changes nothing. Usage::

    python3 -m deploy.release --model build/computer/model.onnx [--extra-model build/jarvis/model.onnx]...
                              [--config my.toml] [--out build/release]

prints the release directory. A missing or empty input is one line on stderr and exit 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"

PI_INSTALL_ROOT = "/opt/wakeword"
"""Where releases live on the Pi; the unit and the launcher name paths under it."""
MODEL_ON_PI = f"{PI_INSTALL_ROOT}/current/model.onnx"
"""The model path the installed config names: always the current release's model."""

DEBIAN_PROVIDED = {"pyaudio": "python3-pyaudio"}
"""Requirements the Pi takes from Debian (the venv sees system packages), not from pip: PyAudio
from pip needs a compiler and PortAudio headers on the Pi."""

GPIO_REQUIREMENTS = ["rpi-lgpio"]
"""What install.sh adds from pip on boards it drives through rpi-lgpio (its gpio_plan)."""

LOCKS = {"requirements.lock": None, "requirements-gpio.lock": GPIO_REQUIREMENTS}
"""The lock files a release carries (from deploy/, written by `make lock`: deploy/lock.py) and the
requirements each must have been made from (None: the device extra minus DEBIAN_PROVIDED)."""

LAUNCHER = """#!/bin/sh
# wakeword launcher of one release: this release's code (lib/) on the shared venv's python.
release=$(dirname "$(dirname "$(readlink -f "$0")")")
export PYTHONPATH="$release/lib${PYTHONPATH:+:$PYTHONPATH}"
exec "$release/venv/bin/python" -c 'import sys; from device.cli import main; sys.exit(main())' "$@"
"""


UNITS = ("wakeword.service", "wakeword-wyoming.service")
"""The systemd units a release carries (install.sh enables the ones ``SERVICE`` names)."""


class ReleaseError(Exception):
    """A release that cannot be built (one line: which input and what to do)."""


@dataclass(frozen=True)
class Release:
    id: str
    """12 hex digits of the hash of MANIFEST.sha256."""
    path: Path
    """The release directory, ``<out>/<id>``."""


def device_requirements(pyproject: Path) -> list[str]:
    """The ``device`` extra of ``pyproject`` without the packages Debian provides on the Pi."""
    try:
        extra = tomllib.loads(pyproject.read_text())["project"]["optional-dependencies"]["device"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise ReleaseError(f"{pyproject}: cannot read the 'device' extra ({exc})") from None
    keep = []
    for req in extra:
        name = re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower().replace("_", "-")
        if name not in DEBIAN_PROVIDED:
            keep.append(req)
    return keep


def checked_lock(path: Path, requirements: list[str]) -> str:
    """The text of the lock file ``path``, after checking that it was made from ``requirements``
    and pins every entry with hashes: a stale lock stops the release, not the Pi."""
    from device import lockfile

    if not path.is_file():
        raise ReleaseError(f"{path} is missing: run `make lock`")
    text = path.read_text()
    header = next(
        (line[len("# input:") :].strip() for line in text.splitlines() if line.startswith("# input:")), "null"
    )
    try:
        made_from = json.loads(header)
        lockfile.parse(text)
    except (ValueError, lockfile.LockError) as exc:
        raise ReleaseError(f"{path} is not what `make lock` writes ({exc}): run `make lock`") from None
    if made_from != requirements:
        raise ReleaseError(
            f"{path} was made for {made_from}, the Pi needs {requirements} "
            "(pyproject.toml's device extra changed): run `make lock`"
        )
    if not lockfile.targets(text):
        raise ReleaseError(f"{path} has wheels for no Pi at all (no '# targets:'): run `make lock`")
    return text


def default_config(example: Path, extra: Sequence[str] = ()) -> str:
    """The commented example config with its model path pointed at the current release, and a
    ``[[keywords]]`` table for each extra model (``extra``: their names under ``models/``)."""
    if not example.is_file():
        raise ReleaseError(f"{example} is missing; pass a config with PI_CONFIG=path")
    text = example.read_text()
    text, n = re.subn(r'(?m)^(\s*#?\s*model\s*=\s*)"[^"]*"', rf'\1"{MODEL_ON_PI}"', text, count=1)
    if extra:
        # [[keywords]] tables must come before the first [section]
        tables = "".join(f'[[keywords]]\nmodel = "{PI_INSTALL_ROOT}/current/models/{name}"\n\n' for name in extra)
        first = re.search(r"(?m)^\[", text)
        at = first.start() if first else len(text)
        text = text[:at] + "# The release's other keyword models (make deploy MODELS=...)\n" + tables + text[at:]
    return text


MAX_EXTRA_MODELS = 7
"""Besides ``model.onnx``: the daemon runs at most 8 keywords (``device.config.MAX_KEYWORDS``)."""


def extra_model_names(models: list[Path]) -> list[str]:
    """File names under ``models/``: ``build/jarvis/model.onnx`` -> ``1-jarvis.onnx`` (a model
    called ``model.onnx`` is named for its folder; the number keeps two names apart)."""
    names = []
    for i, m in enumerate(models, 1):
        base = m.parent.name if m.name == "model.onnx" else m.stem
        names.append(f"{i}-{re.sub(r'[^A-Za-z0-9_-]+', '_', base) or 'model'}.onnx")
    return names


def _device_files(device_dir: Path) -> list[Path]:
    """Files of the daemon's package (sources and data), relative to ``device_dir``."""
    files = []
    for p in sorted(device_dir.rglob("*")):
        rel = p.relative_to(device_dir)
        if p.is_file() and "__pycache__" not in rel.parts and p.suffix not in (".pyc", ".pyo"):
            files.append(rel)
    if Path("cli.py") not in files:
        raise ReleaseError(f"{device_dir}/cli.py is missing: the daemon has no entry point")
    return files


def _stage(
    tmp: Path,
    model: Path,
    config_text: str,
    locks: dict[str, str],
    device_dir: Path,
    extra: dict[str, Path] | None = None,
) -> None:
    """Write every hashed file of the release into ``tmp``."""
    for rel in _device_files(device_dir):
        dst = tmp / "lib" / "device" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(device_dir / rel, dst)
    (tmp / "bin").mkdir()
    (tmp / "bin" / "wakeword").write_text(LAUNCHER)
    shutil.copyfile(model, tmp / "model.onnx")
    if extra:
        (tmp / "models").mkdir()
        for name, path in extra.items():
            shutil.copyfile(path, tmp / "models" / name)
    (tmp / "config.toml").write_text(config_text)
    for name, text in locks.items():
        (tmp / name).write_text(text)
    for unit in UNITS:
        shutil.copyfile(DEPLOY / unit, tmp / unit)
    (tmp / "pi").mkdir()
    for script in ("install.sh", "platform.sh", "undeploy.sh"):
        shutil.copyfile(DEPLOY / "pi" / script, tmp / "pi" / script)
    for p in tmp.rglob("*"):
        if p.is_file():
            p.chmod(0o755 if p.parent.name in ("bin", "pi") else 0o644)


def _manifest(root: Path) -> str:
    """sha256sum-format lines for every file under ``root``, sorted by path."""
    lines = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
            lines.append(f"{digest}  {p.relative_to(root).as_posix()}\n")
    return "".join(lines)


def build(
    model: Path,
    out: Path,
    config: Path | None = None,
    device_dir: Path = REPO / "device",
    keyword: str = "",
    extra_models: Sequence[Path] = (),
    lock_dir: Path = DEPLOY,
) -> Release:
    """Build (or find, if already built) the release for these inputs under ``out``."""
    model = Path(model)
    if not model.is_file() or model.stat().st_size == 0:
        raise ReleaseError(
            f"model {model} not found (or empty): run `make train export`, or pass MODEL=path/to/model.onnx"
        )
    extra_models = [Path(m) for m in extra_models]
    if len(extra_models) > MAX_EXTRA_MODELS:
        raise ReleaseError(f"{len(extra_models)} extra models: one daemon runs at most {MAX_EXTRA_MODELS + 1} keywords")
    for m in extra_models:
        if not m.is_file() or m.stat().st_size == 0:
            raise ReleaseError(f"extra model {m} not found (or empty): check MODELS=")
    extra = dict(zip(extra_model_names(extra_models), extra_models))
    if config is not None:
        if not Path(config).is_file():
            raise ReleaseError(f"config {config} not found")
        config_text = Path(config).read_text()
    else:
        config_text = default_config(device_dir / "config.example.toml", list(extra))
    requirements = device_requirements(REPO / "pyproject.toml")
    locks = {
        name: checked_lock(Path(lock_dir) / name, requirements if reqs is None else reqs)
        for name, reqs in LOCKS.items()
    }
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".release-", dir=out))
    tmp.chmod(0o755)  # mkdtemp's 0700 would travel to the Pi, where the service user must read it
    try:
        _stage(tmp, model, config_text, locks, Path(device_dir), extra)
        manifest = _manifest(tmp)
        release_id = hashlib.sha256(manifest.encode()).hexdigest()[:12]
        (tmp / "MANIFEST.sha256").write_text(manifest)
        (tmp / "RELEASE").write_text(
            json.dumps(
                {
                    "id": release_id,
                    "keyword": keyword,
                    "model": str(model),
                    "extra_models": {f"models/{name}": str(path) for name, path in extra.items()},
                    "config": str(config) if config else "device/config.example.toml",
                },
                indent=2,
            )
            + "\n"
        )
        final = out / release_id
        if final.is_dir():
            shutil.rmtree(tmp)  # same content already built
        else:
            os.rename(tmp, final)
        return Release(release_id, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def prune(out: Path, keep: int = 5) -> None:
    """Remove all but the ``keep`` newest releases under ``out`` (workstation side only)."""
    releases = sorted(
        (p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    for old in releases[keep:]:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deploy.release", description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, type=Path, help="the model.onnx to ship")
    ap.add_argument(
        "--config",
        type=Path,
        default=None,
        help="config.toml to install where none exists (default: the commented example)",
    )
    ap.add_argument(
        "--extra-model",
        action="append",
        default=[],
        type=Path,
        dest="extra_models",
        help="another keyword's model.onnx, shipped under models/ (repeatable)",
    )
    ap.add_argument("--keyword", default="", help="recorded in RELEASE")
    ap.add_argument("--out", type=Path, default=REPO / "build" / "release", help="releases go here")
    args = ap.parse_args(argv)
    try:
        release = build(args.model, args.out, args.config, keyword=args.keyword, extra_models=args.extra_models)
    except ReleaseError as exc:
        print(f"release: {exc}", file=sys.stderr)
        return 1
    os.utime(release.path)  # newest for prune(), even when it was built before
    prune(args.out)
    print(release.path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
