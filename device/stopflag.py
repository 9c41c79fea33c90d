"""A stop request that a signal handler can raise safely and a loop can sleep on.

A Python signal handler runs in the main thread between bytecodes, possibly while that
thread holds a lock; setting a :class:`threading.Event` from it can deadlock. Here the
handler only sets a flag and writes a byte to a pipe, and :meth:`StopFlag.wait` sleeps in
``select`` on that pipe, so SIGTERM wakes the loop at once.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal


class StopFlag:
    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)
        self._set = False
        self.signal: int | None = None
        """The signal that asked to stop, if one did."""

    def set(self) -> None:
        """Request a stop (any thread, or a signal handler)."""
        self._set = True
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._w, b"x")

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout_s: float | None) -> bool:
        """Sleep up to ``timeout_s`` (None: forever) or until stopped; returns :meth:`is_set`."""
        if not self._set:
            select.select([self._r], [], [], None if timeout_s is None else max(0.0, timeout_s))
            with contextlib.suppress(BlockingIOError, OSError):
                os.read(self._r, 4096)
        return self._set

    def install(
        self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT), second_sigint_raises: bool = False
    ) -> dict:
        """Make ``signals`` request a stop (call from the main thread) -> the handlers they had.
        ``second_sigint_raises``: a second Ctrl-C raises KeyboardInterrupt (training: "stop now")."""

        def handler(signum, frame):
            if second_sigint_raises and self._set and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self.signal = signum
            self.set()

        return {s: signal.signal(s, handler) for s in signals}

    @contextlib.contextmanager
    def installed(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT), second_sigint_raises: bool = False):
        """:meth:`install` for the duration of a ``with`` block; the old handlers come back after it."""
        old = self.install(signals, second_sigint_raises)
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def close(self) -> None:
        for fd in (self._r, self._w):
            with contextlib.suppress(OSError):
                os.close(fd)
