"""A WAV file as an audio source with the same face as :class:`device.capture.Capture`.

``wakeword listen --input FILE.wav`` streams the file through exactly the live path: a
producer thread pushes int16 blocks into a :class:`~device.ringqueue.DropOldestQueue` as
the PortAudio callback would. By default it goes as fast as the consumer takes the audio
(it waits for room instead of dropping: nothing is lost and results do not depend on
machine speed). With ``realtime=True`` it is paced at 1x and pushes without waiting, like
a microphone, so drops, stall handling and LED latency behave as they would live.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from device.ringqueue import Block, DropOldestQueue
from device.wavio import iter_int16_blocks, wav_info

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Info:
    name: str


class WavSource:
    def __init__(
        self, path: str, block_ms: float = 32.0, realtime: bool = False, session: int = 0, max_s: float | None = None
    ):
        self.path = str(path)
        self.realtime = realtime
        self.session = session
        wi = wav_info(self.path)  # raises WavError with one line
        self.channels = wi.channels
        self.rate_hz = wi.rate_hz
        self.max_frames = None if max_s is None else round(max_s * self.rate_hz)
        self.info = _Info(f"file:{self.path}")
        self._block_frames = max(1, round(block_ms / 1000 * self.rate_hz))
        self.queue: DropOldestQueue | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._frames = 0
        self.error: Exception | None = None
        """Set when reading failed mid-file (e.g. a truncated WAV); the stream then ends."""
        self.started_monotonic: float | None = None
        """``time.monotonic()`` at stream time 0 (with ``realtime``, stream time t is due at
        ``started_monotonic + t``: what LED-latency measurements compare edges against)."""

    @property
    def overflows(self) -> int:
        return 0

    def open(self, queue_s: float) -> DropOldestQueue:
        self.queue = DropOldestQueue(max(1, round(queue_s * self.rate_hz)))
        self._thread = threading.Thread(target=self._run, name="wav-source", daemon=True)
        self._thread.start()
        return self.queue

    def _run(self) -> None:
        t0 = self.started_monotonic = time.monotonic()
        queue = self.queue
        assert queue is not None, "open() starts the thread after making the queue"
        if self.realtime:  # the benchmark's LED-latency runs read this line (edges are logged in monotonic time)
            log.info("playing %s at 1x: stream time 0 = monotonic %.6f s", self.path, t0)
        try:
            for frames, data in iter_int16_blocks(self.path, self._block_frames):
                if self._stop.is_set():
                    break
                if self.max_frames is not None:
                    frames = min(frames, self.max_frames - self._frames)
                    data = data[: frames * self.channels * 2]
                if frames <= 0:
                    break
                if self.realtime:
                    # Deliver each block when its last frame "has been spoken".
                    due = t0 + (self._frames + frames) / self.rate_hz
                    if self._stop.wait(max(0.0, due - time.monotonic())):
                        break
                queue.push(Block(self.session, self._frames, frames, data), wait=not self.realtime)
                self._frames += frames
        except Exception as exc:  # reported by the listener, which owns the logging
            self.error = exc
        finally:
            self._done.set()

    @property
    def finished(self) -> bool:
        return self._done.is_set()

    @property
    def alive(self) -> bool:
        return self._thread is not None and not self._done.is_set()

    @property
    def frames_captured(self) -> int:
        return self._frames

    def close(self) -> None:
        self._stop.set()
        if self.queue is not None:
            self.queue.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
