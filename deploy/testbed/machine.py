"""What the systemd-nspawn container and the emulated Pi have in common as test machines."""

from __future__ import annotations

from pathlib import Path
from typing import Self


class Machine:
    """A booted test machine. Subclasses implement ``start`` and ``stop`` (safe to call on a
    machine that never fully started) and set ``console_log``; ``with`` stops it on the way
    out, and also when ``start`` itself fails half-way."""

    console_log: Path
    console_tail_bytes = 3000

    def start(self) -> float:
        """Boot; returns the seconds it took."""
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def console_tail(self, n_bytes: int | None = None) -> str:
        """The end of the machine's console output ("" if there is none yet)."""
        try:
            return self.console_log.read_bytes()[-(n_bytes or self.console_tail_bytes) :].decode(errors="replace")
        except OSError:
            return ""
