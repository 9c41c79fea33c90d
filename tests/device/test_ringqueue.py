"""The drop-oldest queue between the audio callback and the inference loop."""

from __future__ import annotations

import threading

from device.ringqueue import Block, DropOldestQueue


def block(i: int, frames: int = 10) -> Block:
    return Block(0, i * frames, frames, bytes([i % 256]) * frames * 2)


def test_overflow_drops_the_oldest_and_counts():
    q = DropOldestQueue(capacity_frames=30)
    for i in range(5):
        q.push(block(i))
    assert q.dropped_frames == 20 and q.dropped_blocks == 2
    got = q.take()
    assert [b.start_frame for b in got] == [20, 30, 40]  # the newest survive, in order
    assert q.queued_frames == 0 and q.take() == []


def test_take_limits_to_whole_blocks_and_keeps_the_rest():
    q = DropOldestQueue(100)
    for i in range(5):
        q.push(block(i))
    assert [b.start_frame for b in q.take(max_frames=25)] == [0, 10, 20]
    assert q.queued_frames == 20
    assert [b.start_frame for b in q.take(max_frames=1)] == [30]


def test_a_block_larger_than_the_capacity_still_passes():
    q = DropOldestQueue(5)
    q.push(block(0, frames=8))
    assert q.queued_frames == 8 and q.dropped_frames == 0
    q.push(block(1, frames=8))
    assert q.dropped_frames == 8 and [b.start_frame for b in q.take()] == [8]


def test_waiting_push_gets_room_instead_of_dropping():
    q = DropOldestQueue(20)
    pushed = []

    def producer():
        for i in range(6):
            q.push(block(i), wait=True)
            pushed.append(i)

    t = threading.Thread(target=producer)
    t.start()
    seen = []
    while len(seen) < 6:
        q.wait(10, timeout_s=5)
        seen += [b.start_frame // 10 for b in q.take()]
    t.join(5)
    assert seen == list(range(6)) and q.dropped_frames == 0


def test_close_releases_waiters():
    q = DropOldestQueue(10)
    q.push(block(0))
    done = threading.Event()

    def producer():
        q.push(block(1), wait=True)  # full: waits until close
        done.set()

    t = threading.Thread(target=producer)
    t.start()
    assert not done.wait(0.1)
    q.close()
    assert done.wait(5)
    assert q.wait(1000, timeout_s=None)  # closed: does not block
