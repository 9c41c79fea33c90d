"""What the engines that run a Debian program (``flite``, ``festival``) share: finding the program,
the line ``probe()`` gives when it is missing, and its version for ``backend()``."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess


@functools.cache
def which(name: str) -> str | None:
    """The path of program ``name``, looked up once per process; None when it is not installed."""
    return shutil.which(name)


class Program:
    """The program ``name`` an engine runs, from the Debian ``packages`` named when it is missing."""

    def __init__(self, name: str, packages: str):
        self.name = name
        self.missing = f"the {name} program is not installed ({packages})"
        """What :meth:`probe` says when the program is missing (one line)."""

    def path(self) -> str | None:
        """The program's path (None: not installed); tests replace it to play a machine without it."""
        return which(self.name)

    def probe(self) -> str | None:
        """None when the program is there, else :attr:`missing` (the engine's ``probe()``)."""
        return None if self.path() else self.missing

    def exe(self) -> str:
        """The program's path; FileNotFoundError(:attr:`missing`) when it is missing (the engine is
        used after its probe, so this only happens when the program went away in between)."""
        exe = self.path()
        if exe is None:
            raise FileNotFoundError(self.missing)
        return exe

    def version(self, pattern: str) -> str | None:
        """The first group of ``pattern`` in what ``<program> --version`` prints; None when it is not there."""
        out = subprocess.run([self.exe(), "--version"], capture_output=True, text=True).stdout
        match = re.search(pattern, out)
        return match.group(1) if match else None
