"""`make lock`: pin the Pi's Python packages to exact versions and the sha256 of their wheels.

Writes two files in pip's hash-checking format, which ``pi/install.sh`` installs with
``pip install --require-hashes --only-binary=:all:`` (so a Pi runs these very bytes, or stops)::

    deploy/requirements.lock        the `device` extra of pyproject.toml minus what Debian provides
                                    (release.DEBIAN_PROVIDED), and everything it pulls in
    deploy/requirements-gpio.lock   rpi-lgpio and what it pulls in: added on boards whose GPIO
                                    install.sh drives from pip (not a Pi, or a Pi 5 without
                                    Debian's python3-rpi-lgpio)

**Which versions.** The ones this workstation's ``.venv`` runs, for every package it has: that
venv is what the tests and the export's parity check (ONNX vs PyTorch, onnxruntime + numpy) ran
with, so the Pi runs what was tested. What the venv lacks (rpi-lgpio, lgpio: no GPIO here) is
pip's newest for the reference target, the first of ``TARGETS``, which ``make e2e-pi`` runs.

**How.** ``pip download --only-binary=:all:`` for every target (Python and architecture of a Pi
OS), from PyPI only -- this machine's pip configuration, mirrors and find-links are ignored,
because the Pi downloads from PyPI and the hashes must be of PyPI's files. The reference target
is resolved against the venv's versions; every other target must get the same versions (its
own wheels), else: for the device packages an error, for the GPIO group that target is left out
of the file's ``# targets:`` line (install.sh then takes Debian's python3-rpi-lgpio there, or
says it cannot drive the LED).

Each file starts with machine-readable comments: ``# input: [...]`` (the requirements it was
made from, JSON: the release refuses a lock made for another device extra) and
``# targets: cp311-aarch64 ...`` (install.sh refuses, in one line, a Pi it has no wheels for).

Usage: ``.venv/bin/python -m deploy.lock [--out-dir deploy]`` (needs PyPI; a minute or two,
about 200 MB of wheels the first time, pip's cache after that). Before writing, each file is
installed-checked as the Pi will (``pip download --require-hashes`` for each of its targets).
Exit 0, or 1 with one line.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from deploy.release import DEPLOY, GPIO_REQUIREMENTS, REPO, device_requirements

INDEX_URL = "https://pypi.org/simple"
"""Where the Pi's pip gets its wheels (a Pi with a mirror gets the same bytes, or a hash error)."""

LOCK = DEPLOY / "requirements.lock"
GPIO_LOCK = DEPLOY / "requirements-gpio.lock"

MANYLINUX_FLOOR = 17
"""manylinux_2_17 (= manylinux2014): the oldest glibc tag pip is told the target accepts."""


@dataclass(frozen=True)
class Target:
    """A Python and an architecture a Pi may run, with its OS's glibc (the newest manylinux tag)."""

    python: tuple[int, int]
    machine: str
    """``uname -m``: aarch64 or x86_64."""
    glibc: tuple[int, int]
    os_name: str
    """For the comments only."""

    @property
    def tag(self) -> str:
        """``cp311-aarch64``: what install.sh looks for in a lock's ``# targets:`` line."""
        return f"cp{self.python[0]}{self.python[1]}-{self.machine}"

    def pip_args(self) -> list[str]:
        platforms = [
            f"manylinux_{self.glibc[0]}_{minor}_{self.machine}"
            for minor in range(self.glibc[1], MANYLINUX_FLOOR - 1, -1)
        ]
        platforms.append(f"manylinux2014_{self.machine}")
        args = [
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            f"{self.python[0]}.{self.python[1]}",
            "--abi",
            f"cp{self.python[0]}{self.python[1]}",
        ]
        for p in platforms:
            args += ["--platform", p]
        return args

    def marker_env(self) -> dict[str, str]:
        """The environment markers of ``Requires-Dist`` lines evaluate against on this target."""
        version = f"{self.python[0]}.{self.python[1]}"
        return {
            "python_version": version,
            "python_full_version": f"{version}.0",
            "os_name": "posix",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "implementation_name": "cpython",
            "implementation_version": f"{version}.0",
            "extra": "",
        }


TARGETS = (
    Target((3, 11), "aarch64", (2, 36), "Raspberry Pi OS Bookworm, 64-bit (the emulated Pi of make e2e-pi)"),
    Target((3, 13), "aarch64", (2, 41), "Raspberry Pi OS trixie, 64-bit"),
    Target((3, 11), "x86_64", (2, 36), "Debian 12 amd64 (install.sh accepts amd64; the nspawn deploy tests)"),
    Target((3, 13), "x86_64", (2, 41), "Debian 13 amd64"),
)
"""The first is the reference: its resolution fixes the versions every other target must get."""


class LockError(Exception):
    """The lock cannot be made (one line: which package, which target, what to do)."""


@dataclass
class Wheel:
    name: str
    """Canonical (PEP 503) name."""
    version: str
    sha256: str
    requires: list[Requirement]


def venv_versions() -> dict[str, str]:
    """Canonical name -> version of every distribution this Python runs (the workstation venv),
    except this project and local builds (``+cpu``), which PyPI does not have."""
    out: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if not name or "+" in dist.version or canonicalize_name(name) == "wakeword":
            continue
        out.setdefault(canonicalize_name(name), dist.version)  # the first on sys.path is the one imported
    return out


def pip_env() -> dict[str, str]:
    """This environment without pip's configuration (mirrors, find-links, extra indexes); the CA
    bundle and timeout stay, which reaching PyPI may need."""
    keep = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_DEFAULT_TIMEOUT", "PIP_TRUSTED_HOST"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in keep}
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf at all (global, user, site)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def read_wheel(path: Path) -> Wheel:
    name, version, _build, _tags = parse_wheel_filename(path.name)
    with zipfile.ZipFile(path) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(z.read(meta_name).decode())
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist") or []]
    return Wheel(canonicalize_name(name), str(version), hashlib.sha256(path.read_bytes()).hexdigest(), requires)


def download(
    requirements: list[str],
    constraints: dict[str, str],
    target: Target,
    work: Path,
    probe: dict[str, str] | None = None,
) -> dict[str, Wheel]:
    """``pip download`` the requirements and their dependencies for ``target``, each package held
    to ``constraints`` where it names it; canonical name -> wheel. Raises LockError when pip cannot,
    naming the packages of ``probe`` (name -> version) that have no wheel for the target."""
    dest = Path(tempfile.mkdtemp(prefix=f"{target.tag}-", dir=work))
    cfile = dest.with_suffix(".constraints.txt")
    cfile.write_text("".join(f"{n}=={v}\n" for n, v in sorted(constraints.items())))
    proc = pip_download(target, dest, "-c", str(cfile), *requirements)
    if proc.returncode != 0:
        lacking = [f"{n}=={v}" for n, v in sorted((probe or {}).items()) if not has_wheel(n, v, target, dest)]
        if lacking:
            raise LockError(f"PyPI has no wheel of {', '.join(lacking)} for {target.tag}")
        why = [line for line in proc.stderr.splitlines() if line.startswith("ERROR")] or proc.stderr.splitlines()
        raise LockError(f"{target.tag}: pip download {' '.join(requirements)}: {' / '.join(why[-2:]) or 'failed'}")
    wheels = [read_wheel(p) for p in sorted(dest.glob("*.whl"))]
    return {w.name: w for w in wheels}


def pip_download(target: Target, dest: Path, *args: str) -> subprocess.CompletedProcess:
    """``pip download`` from PyPI alone (:func:`pip_env`) of the wheels ``target`` takes, into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-input", "--index-url", INDEX_URL]
    cmd += [*target.pip_args(), "-d", str(dest), *args]
    return subprocess.run(cmd, env=pip_env(), capture_output=True, text=True)


def has_wheel(name: str, version: str, target: Target, work: Path) -> bool:
    """Does PyPI have a wheel of exactly ``name==version`` for ``target``? (Asked one package at
    a time, without dependencies, to say which one a failed resolution lacks.)"""
    return pip_download(target, work / "probe", "--no-deps", f"{name}=={version}").returncode == 0


def closure(roots: list[str], wheels: dict[str, Wheel], target: Target) -> dict[str, set[str]]:
    """The packages ``roots`` pull in on ``target`` (names of ``wheels``): name -> what requires it."""
    env = target.marker_env()
    via: dict[str, set[str]] = {}
    roots_here = [Requirement(r) for r in roots]
    todo = [(canonicalize_name(r.name), "input") for r in roots_here if r.marker is None or r.marker.evaluate(env)]
    while todo:
        name, parent = todo.pop()
        if name not in wheels:
            raise LockError(f"{target.tag}: {name} (needed by {parent}) was not downloaded")
        first = name not in via
        via.setdefault(name, set()).add(parent)
        if first:
            for req in wheels[name].requires:
                if req.marker is None or req.marker.evaluate(env):
                    todo.append((canonicalize_name(req.name), name))
    return via


@dataclass
class Group:
    """One lock file: its input requirements and, per target covered, what they resolve to."""

    name: str
    requirements: list[str]
    per_target: dict[str, dict[str, Wheel]]
    """Target tag -> canonical name -> wheel (only this group's packages)."""
    via: dict[str, set[str]]
    left_out: dict[str, str]
    """Target tag -> why it is not covered."""


def resolve(
    name: str,
    requirements: list[str],
    pins: dict[str, str],
    work: Path,
    exclude: AbstractSet[str] = frozenset(),
    required: bool = True,
) -> Group:
    """Resolve ``requirements`` for every target: the reference against ``pins``, every other
    target against the reference's versions. ``exclude``: packages another group already locks."""
    group = Group(name, requirements, {}, {}, {})
    reference: dict[str, str] = {}
    for i, target in enumerate(TARGETS):
        constraints = dict(pins, **reference)
        # What to blame if pip fails: the reference's versions, or the venv's of the inputs themselves.
        probe = reference or {
            n: pins[n] for n in (canonicalize_name(Requirement(r).name) for r in requirements) if n in pins
        }
        try:
            wheels = download(requirements, constraints, target, work, probe)
        except LockError as exc:
            if required or i == 0:
                raise
            group.left_out[target.tag] = str(exc)
            continue
        via = closure(requirements, wheels, target)
        mine = {n: wheels[n] for n in via if n not in exclude}
        if i == 0:
            reference = {n: w.version for n, w in mine.items()}
        moved = {n: (reference[n], w.version) for n, w in mine.items() if n in reference and reference[n] != w.version}
        if moved:
            detail = ", ".join(f"{n} {b} (reference {a})" for n, (a, b) in sorted(moved.items()))
            raise LockError(f"{target.tag} resolves other versions than {TARGETS[0].tag}: {detail}")
        group.per_target[target.tag] = mine
        for n, parents in via.items():
            if n not in exclude:
                group.via.setdefault(n, set()).update(parents)
    return group


def verify(lock: Path, work: Path) -> None:
    """Install-check ``lock`` the way the Pi will, for every target it names: pip in hash-checking
    mode downloads each wheel (from pip's cache, mostly) and refuses any file or dependency the
    lock does not pin. Raises LockError naming the target."""
    tags = targets_of(lock.read_text())
    for target in TARGETS:
        if target.tag not in tags:
            continue
        proc = pip_download(target, Path(tempfile.mkdtemp(dir=work)), "--require-hashes", "-r", str(lock))
        if proc.returncode != 0:
            raise LockError(f"{lock.name} does not install on {target.tag}: {proc.stderr.strip()[-300:]}")


def targets_of(text: str) -> list[str]:
    """The ``# targets:`` line of a lock file's text, as a list."""
    for line in text.splitlines():
        if line.startswith("# targets:"):
            return line[len("# targets:") :].split()
    return []


def marker_for(tags: list[str]) -> str:
    """A PEP 508 marker true on exactly these targets (for a package only some of them need)."""
    parts = []
    for t in TARGETS:
        if t.tag in tags:
            parts.append(f'(python_version == "{t.python[0]}.{t.python[1]}" and platform_machine == "{t.machine}")')
    Marker(" or ".join(parts))  # well-formed, or raise here rather than on the Pi
    return " or ".join(parts)


def render(group: Group) -> str:
    """The lock file's text (deterministic: the same resolution gives the same bytes)."""
    covered = [t.tag for t in TARGETS if t.tag in group.per_target]
    lines = [
        "# The Pi's Python packages pinned to exact versions and the sha256 of their wheels: written by",
        "# `make lock` (deploy/lock.py) from the versions the workstation's .venv runs; do not edit.",
        "# deploy/pi/install.sh: pip install --require-hashes --only-binary=:all: -r <this file>",
        f"# input: {json.dumps(group.requirements)}",
        f"# targets: {' '.join(covered)}",
    ]
    for t in TARGETS:
        if t.tag in group.left_out:
            lines.append(f"# not {t.tag} ({t.os_name}): {group.left_out[t.tag]}")
    names = sorted({n for wheels in group.per_target.values() for n in wheels})
    for n in names:
        tags = [t for t in covered if n in group.per_target[t]]
        version = group.per_target[tags[0]][n].version
        hashes = sorted({group.per_target[t][n].sha256 for t in tags})
        marker = f" ; {marker_for(tags)}" if len(tags) < len(covered) else ""
        lines.append(f"{n}=={version}{marker} \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes)]
        parents = sorted(group.via[n])
        lines.append("    # via " + ", ".join("the input" if p == "input" else p for p in parents))
    return "\n".join(lines) + "\n"


def make_locks(out_dir: Path, pyproject: Path = REPO / "pyproject.toml") -> dict[str, str]:
    """Resolve both groups and write their lock files; returns file name -> text."""
    pins = venv_versions()
    with tempfile.TemporaryDirectory(prefix="wakeword-lock-") as tmp:
        base = resolve("device", device_requirements(pyproject), pins, Path(tmp))
        base_pins = {n: w.version for n, w in base.per_target[TARGETS[0].tag].items()}
        gpio = resolve(
            "gpio", GPIO_REQUIREMENTS, dict(pins, **base_pins), Path(tmp), exclude=set(base_pins), required=False
        )
        texts = {LOCK.name: render(base), GPIO_LOCK.name: render(gpio)}
        for name, text in texts.items():
            (Path(tmp) / name).write_text(text)
            verify(Path(tmp) / name, Path(tmp))
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (out_dir / name).write_text(text)
    return texts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="deploy.lock", description=__doc__.split("\n")[0])
    ap.add_argument("--out-dir", type=Path, default=DEPLOY, help="where the lock files go (default: deploy/)")
    args = ap.parse_args(argv)
    try:
        texts = make_locks(args.out_dir)
    except LockError as exc:
        print(f"lock: {exc}", file=sys.stderr)
        return 1
    for name, text in texts.items():
        pins = [line.split(" ")[0] for line in text.splitlines() if line and not line.startswith((" ", "#"))]
        print(f"{args.out_dir / name}: {' '.join(pins)}  [{' '.join(targets_of(text))}]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
