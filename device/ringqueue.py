"""The bounded hand-off between the audio callback and the inference loop.

The PortAudio callback must never block or allocate much, so all it does is
:meth:`DropOldestQueue.push` a :class:`Block` of raw bytes. The queue holds at most
``capacity_frames`` frames; when a push would exceed that, the *oldest* blocks are
dropped (new audio is worth more than old audio) and counted. Blocks carry their position
in the stream, so the consumer sees every gap (a drop, a reconnected device) as a jump in
``start_frame`` and can reset what depends on continuity.

A file source may instead wait for room (``push(block, wait=True)``): a file can be paused,
a microphone cannot.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    session: int
    """Capture session (a new one each time the device is (re)opened)."""
    start_frame: int
    """Index of the block's first frame within its session, at the source's native rate."""
    frames: int
    """Number of frames (one sample per channel each) in ``data``."""
    data: bytes
    """Interleaved little-endian int16 samples, ``frames * channels * 2`` bytes."""

    @property
    def end_frame(self) -> int:
        return self.start_frame + self.frames


class DropOldestQueue:
    """Thread-safe FIFO of :class:`Block` bounded by total frames; drops the oldest when full."""

    def __init__(self, capacity_frames: int):
        if capacity_frames <= 0:
            raise ValueError(f"capacity_frames must be positive, got {capacity_frames}")
        self.capacity_frames = capacity_frames
        self._blocks: deque[Block] = deque()
        self._frames = 0
        self._dropped_frames = 0
        self._dropped_blocks = 0
        self._closed = False
        self._cond = threading.Condition()

    # -- producer side -----------------------------------------------------------------
    def push(self, block: Block, wait: bool = False) -> None:
        """Append ``block``. Full: drop the oldest blocks (``wait=False``, the callback) or
        wait until the consumer makes room (``wait=True``, a file source)."""
        with self._cond:
            if wait:
                self._cond.wait_for(
                    lambda: self._closed or not self._blocks or self._frames + block.frames <= self.capacity_frames
                )
                if self._closed:
                    return
            self._blocks.append(block)
            self._frames += block.frames
            # Never drop the block just pushed: a block larger than the capacity still passes.
            while self._frames > self.capacity_frames and len(self._blocks) > 1:
                old = self._blocks.popleft()
                self._frames -= old.frames
                self._dropped_frames += old.frames
                self._dropped_blocks += 1
            self._cond.notify_all()

    def close(self) -> None:
        """Wake every waiter; later ``push(wait=True)`` calls return without queuing."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    # -- consumer side -----------------------------------------------------------------
    def take(self, max_frames: int | None = None) -> list[Block]:
        """Remove and return the queued blocks, oldest first (whole blocks, up to about
        ``max_frames`` frames: at least one block if any is queued)."""
        with self._cond:
            out: list[Block] = []
            taken = 0
            while self._blocks and (max_frames is None or taken < max_frames):
                b = self._blocks.popleft()
                out.append(b)
                taken += b.frames
            self._frames -= taken
            self._cond.notify_all()
            return out

    def wait(self, min_frames: int, timeout_s: float | None) -> bool:
        """Block until at least ``min_frames`` are queued (or closed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._closed or self._frames >= min_frames, timeout_s)

    @property
    def queued_frames(self) -> int:
        with self._cond:
            return self._frames

    @property
    def dropped_frames(self) -> int:
        """Frames dropped because the queue was full, since creation."""
        with self._cond:
            return self._dropped_frames

    @property
    def dropped_blocks(self) -> int:
        with self._cond:
            return self._dropped_blocks
