"""The audio device connection: open, close, and reopen with exponential backoff.

A source that fails to open, dies, or stops delivering audio for ``no_audio_s`` is closed and
reopened later; the waits double from ``retry_min_s`` up to ``retry_max_s`` (:class:`Backoff`)
and go back to the minimum once a source opens. Each state change is logged once. Every
(re)open is a new *session*: its blocks carry the session number, so late blocks of a closed
session are recognised, and a reconnect is a gap downstream.

No audio is processed here (that is :mod:`device.audiopath`); times are ``time.monotonic()``
seconds, passed in where a test wants to choose them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from device.capture import CaptureError, DeviceNotFound
from device.listenstats import Stats
from device.ringqueue import DropOldestQueue

log = logging.getLogger(__name__)


class ChannelError(ValueError):
    """The configured channels do not exist on the opened input (a config error, one line)."""


class Source(Protocol):
    """What :class:`device.capture.Capture` and :class:`device.filesource.WavSource` offer."""

    channels: int
    rate_hz: int
    session: int

    def open(self, queue_s: float) -> DropOldestQueue: ...
    @property
    def finished(self) -> bool: ...
    @property
    def alive(self) -> bool: ...
    @property
    def overflows(self) -> int: ...
    def close(self) -> None: ...


class Backoff:
    """When to try opening a device next: ``min_s`` after a failure, doubling with each further
    failure up to ``max_s``; back to ``min_s`` once an open succeeds."""

    def __init__(self, min_s: float, max_s: float):
        if not 0 < min_s <= max_s:
            raise ValueError(f"need 0 < min_s <= max_s, got {min_s:g} and {max_s:g}")
        self.min_s, self.max_s = min_s, max_s
        self.wait_s = min_s
        """The wait after the next failure (s)."""
        self.next_try = 0.0
        """Monotonic time of the next attempt; 0 = now."""

    def due(self, now: float) -> bool:
        return now >= self.next_try

    def failed(self, now: float) -> None:
        """An open failed: wait, and wait longer after the next failure."""
        self.next_try = now + self.wait_s
        self.wait_s = min(self.wait_s * 2, self.max_s)

    def lost(self, now: float) -> None:
        """A working device went away: wait before the first retry (the doubling starts after)."""
        self.next_try = now + self.wait_s

    def succeeded(self) -> None:
        self.wait_s = self.min_s


def _name(src: Source, default: str) -> str:
    return getattr(getattr(src, "info", None), "name", default)


class Connection:
    """One audio source at a time, made by ``open_source(session)`` for each (re)connection.

    ``live=False`` (a file): a source that fails to open raises instead of being retried."""

    def __init__(
        self,
        open_source: Callable[[int], Source],
        stats: Stats,
        *,
        device: str,
        queue_s: float,
        no_audio_s: float,
        backoff: Backoff,
        live: bool = True,
    ):
        self.open_source = open_source
        self.stats = stats
        self.device = device
        self.queue_s = queue_s
        self.no_audio_s = no_audio_s
        self.backoff = backoff
        self.live = live
        self.source: Source | None = None
        self.queue: DropOldestQueue | None = None
        self.session = -1
        self.device_name = device
        """The open (or last opened) device's own name."""
        self.waiting_reason = ""
        """Why there is no source (empty: none was lost yet)."""
        self.last_audio = 0.0
        self.opened_at = 0.0
        """Monotonic time the open source opened."""
        self.session_start_s = 0.0
        """Wall-clock seconds from the first open to the open source's (where its stream time starts,
        unless audio already stepped reaches later)."""
        self._t0: float | None = None

    def open(self, now: float | None = None) -> Source | None:
        """Try to open the next session's source -> it (its queue is :attr:`queue`), or None
        when it failed and the next try is scheduled. The caller logs the success (it knows
        what the audio becomes) and then calls :meth:`announced`."""
        session = self.session + 1
        src = self.open_source(session)
        try:
            queue = src.open(self.queue_s)
        except (DeviceNotFound, CaptureError) as exc:
            if not self.live:
                raise
            if not self.waiting_reason:
                log.warning("%s; retrying with backoff up to every %g s", exc, self.backoff.max_s)
            else:
                log.debug("still no audio device: %s", exc)
            self.waiting_reason = str(exc)
            self.backoff.failed(time.monotonic() if now is None else now)
            return None
        now = time.monotonic() if now is None else now
        if self._t0 is None:
            self._t0 = now
        else:
            self.stats.reconnects += 1
        self.source, self.queue, self.session = src, queue, session
        self.last_audio = self.opened_at = now
        self.session_start_s = now - self._t0
        self.backoff.succeeded()
        self.device_name = _name(src, self.device)
        return src

    def announced(self) -> None:
        """The success is logged: a later loss is news again."""
        self.waiting_reason = ""

    def heard(self, now: float) -> None:
        """The source delivered audio (stamped after the work it caused: a device that delivered a
        backlog that took longer than ``no_audio_s`` to process is not silent)."""
        self.last_audio = now

    def check_alive(self, now: float | None = None) -> None:
        """Close a source that died or went silent for ``no_audio_s`` and schedule a reopen;
        re-raise an error the source's thread met."""
        err = getattr(self.source, "error", None)
        if err is not None:
            raise err
        src = self.source
        if src is None:
            return
        now = time.monotonic() if now is None else now
        if not src.alive and not src.finished:
            self.lose("the stream stopped", now)
        elif now - self.last_audio > self.no_audio_s:
            self.lose(f"no audio for {self.no_audio_s:g} s", now)

    def lose(self, reason: str, now: float) -> None:
        log.warning("audio device %r lost (%s); retrying", self.device_name, reason)
        self.waiting_reason = reason
        self.close()
        self.backoff.lost(now)

    def close(self) -> None:
        """Close the source (if any), keeping count of what its queue dropped and its overruns."""
        if self.queue is not None and self.source is not None:
            self.stats._queue_dropped_s += self.queue.dropped_frames / self.source.rate_hz
        if self.source is not None:
            self.stats.overflows += self.source.overflows
            self.source.close()
        self.source, self.queue = None, None

    @property
    def live_dropped_s(self) -> float:
        """Audio the open source's queue dropped (s)."""
        if self.queue is None or self.source is None:
            return 0.0
        return self.queue.dropped_frames / self.source.rate_hz

    @property
    def overflows(self) -> int:
        """Overruns of every source so far, the open one included."""
        return self.stats.overflows + (self.source.overflows if self.source is not None else 0)
