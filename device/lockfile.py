"""The release's lock files (``requirements.lock``, written by ``make lock``): what they pin, which
Pis they have wheels for, and whether this Python runs exactly that (standard library only: this
runs on the Pi, for ``wakeword doctor`` and for install.sh).

A lock is pip's hash-checking format: one ``name==version [; marker]`` entry per package, its
``--hash=sha256:...`` options on continuation lines, and ``# targets: cp311-aarch64 ...`` naming
the Pythons and architectures it has wheels for.

    python -m device.lockfile LOCK [LOCK...]    exit 0 when this Python runs every pinned version,
                                                else 1 and one line per difference
"""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

LOCK_NAME = "requirements.lock"
"""The device packages' lock, at the top of a release (deploy/requirements.lock in the repo)."""
GPIO_LOCK_NAME = "requirements-gpio.lock"
"""rpi-lgpio's lock: installed only on boards whose GPIO install.sh takes from pip."""


@dataclass(frozen=True)
class Pin:
    name: str
    """Canonical (PEP 503) name: lower case, runs of ``-_.`` as one ``-``."""
    version: str
    hashes: tuple[str, ...]
    marker: str = ""
    """Empty when every target of the lock needs the package."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _entries(text: str) -> list[str]:
    """Logical lines (continuations joined), comments and blank lines dropped."""
    out, current = [], ""
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0] if not raw.lstrip().startswith("#") else ""
        if not line.strip() and not current:
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            out.append(current.strip())
        current = ""
    if current.strip():
        out.append(current.strip())
    return out


class LockError(ValueError):
    """A lock file that is not what ``make lock`` writes (one line)."""


def parse(text: str) -> list[Pin]:
    """Every entry of a lock's text; raises LockError for one that is not ``name==version`` with hashes."""
    pins = []
    for entry in _entries(text):
        hashes = tuple(re.findall(r"--hash=sha256:([0-9a-f]{64})", entry))
        spec = re.sub(r"\s*--hash=\S+", "", entry).strip()
        spec, _, marker = spec.partition(";")
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", spec.strip())
        if not m or not hashes:
            raise LockError(f"not a pinned, hashed requirement: {entry[:80]}")
        pins.append(Pin(canonical(m.group(1)), m.group(2), hashes, marker.strip()))
    return pins


def targets(text: str) -> list[str]:
    """The ``# targets:`` line: ``["cp311-aarch64", ...]`` (empty when there is none)."""
    for line in text.splitlines():
        if line.startswith("# targets:"):
            return line[len("# targets:") :].split()
    return []


def this_target(machine: str | None = None, python: tuple[int, int] | None = None) -> str:
    """This machine as a lock names its targets: ``cp311-aarch64``."""
    major, minor = python or sys.version_info[:2]
    return f"cp{major}{minor}-{machine or platform.machine()}"


def installed_version(name: str) -> str | None:
    """The version this Python imports (the venv's before the system's), or None."""
    try:
        return version(name)
    except PackageNotFoundError:
        return None


def differences(
    pins: list[Pin], installed: Callable[[str], str | None] | None = None, optional: bool = False
) -> list[str]:
    """One phrase per pin this Python does not run: ``numpy 1.24.2 (lock: 2.4.6)``, ``wyoming
    missing (lock: 1.10.2)``. ``installed``: name -> version or None (default: what this Python
    imports). A missing package counts unless ``optional`` or the pin has a marker (some targets only)."""
    installed = installed or installed_version
    out = []
    for pin in pins:
        have = installed(pin.name)
        if have is None:
            if not optional and not pin.marker:
                out.append(f"{pin.name} missing (lock: {pin.version})")
        elif canonical(have) != canonical(pin.version):
            out.append(f"{pin.name} {have} (lock: {pin.version})")
    return out


def release_dir() -> Path | None:
    """The release this code runs from (``<release>/lib/device/``), when it carries a lock."""
    root = Path(__file__).resolve().parent.parent.parent
    if (root / "MANIFEST.sha256").is_file() and (root / LOCK_NAME).is_file():
        return root
    return None


def main(argv: list[str] | None = None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python -m device.lockfile LOCK [LOCK...]", file=sys.stderr)
        return 2
    found, count = [], 0
    for path in paths:
        try:
            pins = parse(path.read_text())
        except (OSError, LockError) as exc:
            print(f"{path}: {exc}", file=sys.stderr)
            return 2
        count += len(pins)
        found += differences(pins)
    if found:
        for line in found:
            print(f"  {line}")
        return 1
    print(f"this Python runs the {count} versions the lock pins")
    return 0


if __name__ == "__main__":
    sys.exit(main())
