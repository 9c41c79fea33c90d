"""What the engines that run a Debian program (``flite``, ``festival``) share: finding the program,
the line :func:`probe` gives when it is missing, and its version for ``backend()``."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess


@functools.cache
def which(name: str) -> str | None:
    """The path of program ``name``, looked up once per process; None when it is not installed."""
    return shutil.which(name)


def not_installed(name: str, packages: str) -> str:
    """Why an engine is skipped when its program is missing: one line naming the Debian ``packages``."""
    return f"the {name} program is not installed ({packages})"


def require(exe: str | None, reason: str) -> str:
    """``exe``, the program's path; FileNotFoundError(``reason``) when it is missing (the engine is
    used after its probe, so this only happens when the program went away in between)."""
    if exe is None:
        raise FileNotFoundError(reason)
    return exe


def version(exe: str, pattern: str) -> str | None:
    """The first group of ``pattern`` in what ``exe --version`` prints; None when it is not there."""
    out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    match = re.search(pattern, out)
    return match.group(1) if match else None
