"""Freed memory goes back to the system (glibc), so a daemon that runs for months holds what it
uses, not the high-water mark of its busiest minute.

glibc's malloc keeps what the process frees: at the top of each arena up to a threshold that
rises after large blocks are freed, and inside the arenas as free chunks. Each burst of work
(a reconnect, which starts new audio threads and reloads ALSA's plugins; the backlog after a
stall; a clip written while a hook runs) can then leave the process a little larger for good.
``make soak`` saw memory climb in steps at fault rounds, 1.0-1.7 MiB per hour over two hours; part of
it is memory malloc holds free, part is held for good by the audio library (PortAudio keeps ~13 KiB
per initialisation), which these calls cannot give back (docs/soak.md: measured, not yet fixed):

- :func:`limit_arenas`: at most two malloc arenas (``mallopt(M_ARENA_MAX, 2)``) instead of eight
  per core; the daemon's few threads (audio callback, the sound server client's loop, a hook's
  stderr reader) then share free memory instead of each keeping its own;
- :class:`HeapTrim`: ``malloc_trim(0)`` once a minute from the inference loop, which returns every
  whole free page of every arena to the kernel (a millisecond or so; ``make bench`` counts it in
  the CPU figure).

Where the C library is not glibc (musl, macOS) neither symbol exists and both do nothing.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger("wakeword.heap")

M_ARENA_MAX = -8
"""``mallopt`` parameter number of ``M_ARENA_MAX`` (glibc's malloc.h)."""

TRIM_EVERY_S = 60.0


def _libc_function(name: str, restype, *argtypes):
    """``name`` from the C library the process runs on, or None when it has no such function."""
    try:
        fn = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    fn.restype = restype
    fn.argtypes = list(argtypes)
    return fn


def limit_arenas(n: int = 2) -> bool:
    """At most ``n`` malloc arenas from now on (call it before the threads start). True when the
    C library took it."""
    mallopt = _libc_function("mallopt", ctypes.c_int, ctypes.c_int, ctypes.c_int)
    ok = mallopt is not None and mallopt(M_ARENA_MAX, n) == 1
    log.debug("malloc arenas limited to %d: %s", n, ok)
    return ok


class HeapTrim:
    """``tick(now)`` from a loop: at most once per ``every_s``, give free heap pages back."""

    def __init__(self, every_s: float = TRIM_EVERY_S):
        self.every_s = every_s
        self.trims = 0
        self._next = 0.0
        self._trim = _libc_function("malloc_trim", ctypes.c_int, ctypes.c_size_t)

    @property
    def available(self) -> bool:
        return self._trim is not None

    def tick(self, now: float) -> None:
        if self._trim is None or now < self._next:
            return
        self._next = now + self.every_s
        self._trim(0)
        self.trims += 1
