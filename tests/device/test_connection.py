"""The device connection without a device: the backoff schedule, failed and successful opens,
a source that dies or goes silent, and what closed sources lost. Times are passed in."""

from __future__ import annotations

import pytest

from device.capture import DeviceNotFound
from device.connection import Backoff, Connection
from device.listenstats import Stats
from device.ringqueue import Block, DropOldestQueue

RATE = 16000


def test_backoff_doubles_to_the_cap_and_starts_again_after_success():
    b = Backoff(1.0, 30.0)
    assert b.due(0.0)
    waits, now = [], 100.0
    for _ in range(8):
        b.failed(now)
        waits.append(b.next_try - now)
        assert not b.due(now) and b.due(b.next_try)
        now = b.next_try
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    b.succeeded()
    b.lost(now)  # a working device went away: the first wait is the shortest again ...
    assert b.next_try - now == 1
    b.failed(now)  # ... and the doubling starts after it
    b.failed(now)
    assert b.next_try - now == 2


def test_backoff_rejects_a_cap_below_the_first_wait():
    with pytest.raises(ValueError):
        Backoff(2.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)


class Mic:
    """A device that is plugged in (or not) as the test says."""

    def __init__(self, session: int, present: bool = True):
        self.session, self.present = session, present
        self.rate_hz, self.channels = RATE, 1
        self.queue: DropOldestQueue | None = None
        self.dead = self.closed = False
        self.overflows = 0
        self.finished = False
        self.error: Exception | None = None  # what the reading thread met (as WavSource.error)

    def open(self, queue_s: float) -> DropOldestQueue:
        if not self.present:
            raise DeviceNotFound("no input device matches 'usb'")
        self.queue = DropOldestQueue(round(queue_s * self.rate_hz))
        return self.queue

    @property
    def alive(self) -> bool:
        return not self.dead and not self.closed

    def close(self) -> None:
        self.closed = True


def connection(plugged: list[bool], live: bool = True) -> tuple[Connection, list[Mic], Stats]:
    made: list[Mic] = []
    it = iter(plugged)

    def open_source(session: int) -> Mic:
        made.append(Mic(session, next(it)))
        return made[-1]

    stats = Stats()
    conn = Connection(
        open_source, stats, device="usb", queue_s=1.0, no_audio_s=3.0, backoff=Backoff(1.0, 4.0), live=live
    )
    return conn, made, stats


def test_failed_opens_back_off_and_a_success_resets_the_schedule():
    conn, made, stats = connection([False, False, False, True, True])
    assert conn.open(now=10.0) is None
    assert conn.source is None and "no input device" in conn.waiting_reason
    assert conn.backoff.next_try == 11.0
    assert conn.open(now=11.0) is None and conn.backoff.next_try == 13.0
    assert conn.open(now=13.0) is None and conn.backoff.next_try == 17.0
    src = conn.open(now=17.0)
    assert src is made[3] and conn.source is src and conn.queue is src.queue
    assert conn.session == src.session == 0 and conn.backoff.wait_s == 1.0  # a session is a successful open
    assert conn.session_start_s == 0.0 and stats.reconnects == 0  # the first open starts the clock
    conn.announced()
    assert conn.waiting_reason == ""
    # lost after 5 s: the next open is a reconnect, its stream time starts at the wall-clock gap
    conn.lose("the stream stopped", now=22.0)
    assert src.closed and conn.source is None and conn.backoff.next_try == 23.0
    assert conn.open(now=23.0) is made[4]
    assert conn.session == made[4].session == 1
    assert stats.reconnects == 1 and conn.session_start_s == 6.0


def test_a_file_that_cannot_be_opened_raises_instead_of_retrying():
    conn, _, _ = connection([False], live=False)
    with pytest.raises(DeviceNotFound):
        conn.open(now=0.0)


def test_a_dead_or_silent_source_is_lost_and_one_delivering_is_not():
    conn, made, _ = connection([True, True, True])
    conn.open(now=0.0)
    conn.heard(2.0)
    conn.check_alive(now=4.9)  # 2.9 s since the last audio: still there
    assert conn.source is made[0]
    conn.check_alive(now=5.1)
    assert made[0].closed and conn.source is None and conn.waiting_reason == "no audio for 3 s"
    conn.open(now=6.1)
    made[1].dead = True
    conn.check_alive(now=6.2)
    assert made[1].closed and conn.waiting_reason == "the stream stopped"


def test_an_error_the_source_thread_met_is_raised():
    conn, made, _ = connection([True])
    conn.open(now=0.0)
    made[0].error = OSError("device gone")
    with pytest.raises(OSError, match="device gone"):
        conn.check_alive(now=0.1)


def test_what_closed_sources_dropped_and_overran_is_kept():
    conn, made, stats = connection([True, True])
    src = conn.open(now=0.0)
    assert src is not None and src.queue is not None
    for i in range(3):  # 1.5 s into a 1 s queue
        src.queue.push(Block(0, i * RATE // 2, RATE // 2, bytes(RATE)))
    src.overflows = 2
    assert conn.live_dropped_s == 0.5 and conn.overflows == 2
    conn.close()
    assert stats._queue_dropped_s == 0.5 and stats.overflows == 2
    assert conn.live_dropped_s == 0.0 and conn.overflows == 2
    conn.open(now=1.0)
    made[1].overflows = 1
    assert conn.overflows == 3
