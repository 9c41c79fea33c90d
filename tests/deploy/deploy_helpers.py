"""Helpers for the deploy tests."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

UNIT = REPO / "deploy" / "wakeword.service"


def make(
    target: str, *assignments: str, timeout_s: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``make -C REPO <target> VAR=value ...`` as a user types it; text output, never raises."""
    full_env = dict(os.environ)
    for k in ("MODEL", "MODELS", "PI_CONFIG", "SSH_CONFIG", "SSH_OPTS", "DRY_RUN", "HOST", "PURGE", "FOLLOW"):
        full_env.pop(k, None)
    full_env.update(env or {})
    proc = subprocess.run(
        ["make", "--no-print-directory", "-C", str(REPO), target, *assignments],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=full_env,
    )
    proc.output = proc.stdout + proc.stderr  # type: ignore[attr-defined]
    return proc


def result_lines(output: str) -> dict[str, str]:
    """The per-host summary lines ``<host>: <result>  [log: ...]`` -> {host: result}."""
    out = {}
    for line in output.splitlines():
        m = re.match(r"^(\S+): (.*?)  \[log: .*\]$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def which_or_fail(*tools: str) -> None:
    """Tools this machine must have once `make setup-test` ran (their absence is a setup bug)."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise AssertionError(
            f"missing {', '.join(missing)}: run `make setup-test` (scripts/apt-extra.txt lists the Debian packages)"
        )


def fake_programs(bindir: Path, programs: dict[str, str]) -> Path:
    """Shell scripts in ``bindir`` standing in for real programs: name -> script body; returns ``bindir``."""
    bindir.mkdir(parents=True, exist_ok=True)
    for name, body in programs.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)
    return bindir


def run_install_sh(release_dir: Path, bindir: Path, apt_calls: Path) -> subprocess.CompletedProcess:
    """A release's ``pi/install.sh`` with ``bindir``'s fake programs first on PATH, among them an
    apt-get that notes each call in ``apt_calls`` and fails: should the script's checks ever let it
    through, apt-get is the first thing that would change the machine."""
    fake_programs(bindir, {"apt-get": f"echo called >> {apt_calls}\nexit 1"})
    return subprocess.run(
        ["sh", str(release_dir / "pi" / "install.sh")],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}"),
    )


def assert_root_builder_refuses(script: Path, name: str, cache: Path, why: str) -> None:
    """One of deploy/testbed's cached-root builders (pi-image.sh, fresh-root.sh), run with ``name`` as
    its suite or distro, a bare PATH and its cache under ``cache``, refuses it: exit 2 and ``why`` on
    stderr, before it has made its cache."""
    proc = subprocess.run(
        [str(script), name],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "WAKEWORD_TESTBED_CACHE": str(cache)},
    )
    assert proc.returncode == 2, proc.stderr
    assert why in proc.stderr
    assert not cache.exists()
