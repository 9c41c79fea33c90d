"""The inference loop: audio source -> queue -> downmix -> model steps -> decision -> outputs.

Every ``infer_every_s`` (the model's own number, unless ``[capture] infer_every_s`` sets a
smaller step) the loop takes what has arrived, reduces
it to mono at the model rate, and steps the model on every whole output hop it has (the
rest waits for the next tick). Three rules keep the LED honest:

- **Gaps reset.** Each block carries its stream position; a jump (queue overflow, stale
  drop, reconnected device) resets the model state, the resampler and the smoothing, so
  audio on the two sides of a gap is never glued together.
- **Stale audio is dropped.** After a stall (process paused, slow SD card) more than
  ``stale_after_s`` may be waiting; everything older than that is dropped, and the model
  restarts on fresh audio. When the loop itself sat idle for longer than ``stale_after_s``,
  all that waits is dropped, however little: it was queued before the stall, or it is the start of
  the backlog the audio thread is still handing over (``make soak`` caught a tone from just before
  a SIGSTOP firing 3 s late that way). The LED never fires on old audio.
- **A lost device is not fatal.** A stream that dies or stops delivering for
  ``no_audio_s`` is closed and reopened with exponential backoff; each state change is
  logged once; the systemd watchdog keeps being pinged from this loop (a loop that hangs,
  e.g. inside a device open, stops pinging and systemd restarts the service).

Stream time (``time_s`` everywhere) is the position in the audio: for a file, seconds
from its start; live, seconds of audio since the first capture began (across a reconnect
it continues from the wall-clock gap).

With a file source (``live=False``) there is no clock: each step takes exactly
``infer_every_s`` of audio as soon as it is there, so results do not depend on machine speed.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np

from device.capture import CaptureError, DeviceNotFound
from device.clipsaver import Keepers
from device.decision import Decider, Detection
from device.downmix import Downmixer
from device.engine import Engine
from device.gate import EnergyGate
from device.outputs import Outputs
from device.ringqueue import Block, DropOldestQueue
from device.sdnotify import Notifier
from device.stopflag import StopFlag

log = logging.getLogger(__name__)

STALE_WARNING_EVERY_S = 60.0
"""Repeated stale-audio drops are logged at most this often (the STATUS line counts them all)."""


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


@dataclass(frozen=True)
class CaptureConfig:
    device: str = "default"
    """(Part of) the name of the input device; ``wakeword devices`` lists them.
    ``file:/path/x.wav`` plays a WAV file at 1x instead (test rigs without audio hardware)."""
    channels: int = 0
    """Channels to open (0 = all the device has). Mic arrays: 4, 6, 8 ..."""
    use_channels: tuple[int, ...] = ()
    """0-based channels to use; several are averaged; empty = average all opened channels."""
    rate_hz: int = 0
    """Rate to open the device at (0 = its default); resampled to the model's rate (Hz)."""
    block_ms: float = 32.0
    """Audio per PortAudio callback (ms)."""
    queue_s: float = 8.0
    """Capacity of the drop-oldest queue between the callback and the loop (s of audio)."""
    stale_after_s: float = 1.5
    """Audio older than this when the loop gets to it is dropped and the model reset (s)."""
    no_audio_s: float = 3.0
    """A stream that delivers nothing for this long counts as a lost device (s)."""
    retry_min_s: float = 1.0
    """First wait before reopening a lost or missing device (s); doubles each failure."""
    retry_max_s: float = 30.0
    """Longest wait between reopen attempts (s)."""
    infer_every_s: float = 0.0
    """Audio per inference step (s); 0 = the model's own ``infer_every_s`` (0.48 s). Smaller
    steps report a detection sooner for more CPU; must be a whole number of the model's
    output frames (checked when the model is loaded)."""

    def __post_init__(self) -> None:
        if self.channels < 0 or self.rate_hz < 0:
            raise ValueError("channels and rate_hz must be >= 0 (0 = the device's own)")
        if any(c < 0 for c in self.use_channels):
            raise ValueError(f"use_channels must be 0-based channel numbers, got {list(self.use_channels)}")
        if self.channels and any(c >= self.channels for c in self.use_channels):
            raise ValueError(f"use_channels {list(self.use_channels)} name a channel beyond channels = {self.channels}")
        if self.infer_every_s < 0:
            raise ValueError(f"infer_every_s must be >= 0 (0 = the model's own), got {self.infer_every_s}")
        for name in ("block_ms", "queue_s", "stale_after_s", "no_audio_s", "retry_min_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")
        if self.infer_every_s >= self.stale_after_s:
            raise ValueError(
                f"infer_every_s ({self.infer_every_s:g} s) must be shorter than stale_after_s "
                f"({self.stale_after_s:g} s): every step's audio would be dropped as stale"
            )


@dataclass
class KeywordUnit:
    """One keyword the daemon listens for: its model, its decision rule, what its detections do."""

    engine: Engine
    decider: Decider
    outputs: Outputs
    count: int = 0

    @property
    def keyword(self) -> str:
        return self.engine.meta.keyword


@dataclass
class Stats:
    """Counters for the STATUS line and the end-of-run summary."""

    steps: int = 0
    skipped_steps: int = 0
    detections: int = 0
    dropped_s: float = 0.0
    stale_drops: int = 0
    resets: int = 0
    reconnects: int = 0
    audio_s: float = 0.0
    last: Detection | None = None
    last_wall: float = 0.0
    overflows: int = 0
    _queue_dropped_s: float = field(default=0.0, repr=False)


class Listener:
    def __init__(
        self,
        engine: Engine,
        decider: Decider,
        outputs: Outputs,
        open_source: Callable[[int], Source],
        cfg: CaptureConfig,
        *,
        live: bool = True,
        notifier: Notifier | None = None,
        saver: Keepers | None = None,
        gate: EnergyGate | None = None,
        on_step: Callable[[float, float], None] | None = None,
        on_detection: Callable[[Detection], None] | None = None,
        on_frames: Callable[[float, np.ndarray], None] | None = None,
        more_keywords: tuple[KeywordUnit, ...] = (),
    ):
        """``open_source(session)`` makes a new, unopened source for each (re)connection;
        ``on_step(end_time_s, max_prob)``, ``on_frames(start_time_s, probs)`` (every output
        frame of the step; both of the first keyword's model) and ``on_detection(det)`` (any
        keyword's, ``det.keyword`` says which) observe the results. ``more_keywords``: further
        keywords stepped on the same audio, each with its own decision rule and outputs.

        Raises ``device.params.ParamsError`` when ``cfg.infer_every_s`` is not a whole number
        of the model's output frames. Every model must hear the same audio (rate and output frame:
        ``device.cli`` checks that when it loads them)."""
        self.engine = engine
        # the step size is the only audio number the daemon may choose: it does not change
        # what the model computes, only how much audio each call gets
        self.params = (
            dataclasses.replace(engine.params, infer_every_s=cfg.infer_every_s) if cfg.infer_every_s else engine.params
        )
        self.decider = decider
        self.outputs = outputs
        self.units = [KeywordUnit(engine, decider, outputs), *more_keywords]
        self.open_source = open_source
        self.cfg = cfg
        self.live = live
        self.notifier = notifier or Notifier("")
        self.saver = saver
        self.gate = gate
        self.on_step = on_step
        self.on_detection = on_detection
        self.on_frames = on_frames
        self.stats = Stats()
        self.source: Source | None = None
        self.queue: DropOldestQueue | None = None
        self.device_name = cfg.device
        self._session = -1
        self._expected_frame: int | None = None
        self._mix: Downmixer | None = None
        self._pending = np.zeros(0, np.float32)  # model-rate audio not yet stepped
        self._pieces: list[np.ndarray] = []  # ... and what arrived since (joined lazily)
        self._seg_start_s = 0.0
        self._seg_samples = 0
        self._session_offset_s = 0.0
        self._t0: float | None = None
        self._ready = False
        self._last_audio = 0.0
        self._retry_s = cfg.retry_min_s
        self._next_retry = 0.0
        self._waiting_reason = ""
        self._gated = False
        self._skipped: tuple[np.ndarray, float] | None = None
        self._last_stale_warning = -float("inf")
        self._idle_since = 0.0

    # The open source, its queue and downmixer: only used while connected (``source`` is set).
    @property
    def _src(self) -> Source:
        assert self.source is not None, "no open audio source"
        return self.source

    @property
    def _q(self) -> DropOldestQueue:
        assert self.queue is not None, "no open audio source"
        return self.queue

    @property
    def _mixer(self) -> Downmixer:
        assert self._mix is not None, "no open audio source"
        return self._mix

    # -- connection management --------------------------------------------------------
    def connect(self) -> bool:
        """Try to open a source; on failure schedule the next try. True if audio can flow."""
        session = self._session + 1
        src = self.open_source(session)
        try:
            queue = src.open(self.cfg.queue_s)
        except (DeviceNotFound, CaptureError) as exc:
            if not self.live:
                raise
            if not self._waiting_reason:
                log.warning("%s; retrying with backoff up to every %g s", exc, self.cfg.retry_max_s)
            else:
                log.debug("still no audio device: %s", exc)
            self._waiting_reason = str(exc)
            self._next_retry = time.monotonic() + self._retry_s
            self._retry_s = min(self._retry_s * 2, self.cfg.retry_max_s)
            return False
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = now
        else:
            self.stats.reconnects += 1
        self._session_offset_s = max(self._segment_end_s(), now - self._t0)
        try:
            mix = Downmixer(src.rate_hz, src.channels, self.params.sample_rate, self.cfg.use_channels)
        except ValueError as exc:
            src.close()
            name = getattr(getattr(src, "info", None), "name", self.cfg.device)
            raise ChannelError(f"[capture] use_channels: {exc} ({name!r})") from None
        self.source, self.queue, self._session = src, queue, session
        self._mix = mix
        self._expected_frame = None
        self._last_audio = self._idle_since = now
        self._retry_s = self.cfg.retry_min_s
        self.device_name = getattr(getattr(src, "info", None), "name", self.cfg.device)
        how = "back: " if self._waiting_reason else ""
        log.info(
            "%slistening on %r (%d ch, %d Hz -> %d Hz mono, channels %s) for %s",
            how,
            self.device_name,
            src.channels,
            src.rate_hz,
            self.params.sample_rate,
            list(self._mix.use_channels),
            ", ".join(repr(u.keyword) for u in self.units),
        )
        self._waiting_reason = ""
        return True

    def _disconnect(self, reason: str) -> None:
        log.warning("audio device %r lost (%s); retrying", self.device_name, reason)
        self._waiting_reason = reason
        self._close_source()
        self._next_retry = time.monotonic() + self._retry_s

    def _close_source(self) -> None:
        if self.queue is not None:
            self.stats._queue_dropped_s += self.queue.dropped_frames / self._src.rate_hz
        if self.source is not None:
            self.stats.overflows += self.source.overflows
            self.source.close()
        self.source, self.queue = None, None

    # -- the loop ---------------------------------------------------------------------
    def run(self, stop: StopFlag) -> None:
        """Listen until ``stop`` is set or the source ends (a file, or ``max_frames``)."""
        tick_s = self.params.infer_every_s
        next_tick = time.monotonic() + tick_s
        try:
            while not stop.is_set():
                if self.source is None:
                    if time.monotonic() < self._next_retry or not self.connect():
                        self._publish()
                        stop.wait(min(tick_s, max(0.0, self._next_retry - time.monotonic())))
                        continue
                    next_tick = time.monotonic() + tick_s
                if self.live:
                    stop.wait(next_tick - time.monotonic())
                    next_tick = max(next_tick + tick_s, time.monotonic())
                else:
                    self._q.wait(self._step_frames(), timeout_s=0.1)
                ended = self._src.finished and self._q.queued_frames == 0
                self.poll()
                if ended:
                    self.finish()
                    return
                if self.live and self.source is not None:
                    self._check_alive()
                self._publish()
        finally:
            self._close_source()

    def _step_frames(self) -> int:
        return max(1, round(self.params.infer_every_s * self._src.rate_hz))

    def _check_alive(self) -> None:
        err = getattr(self.source, "error", None)
        if err is not None:
            raise err
        if not self._src.alive and not self._src.finished:
            self._disconnect("the stream stopped")
        elif time.monotonic() - self._last_audio > self.cfg.no_audio_s:
            self._disconnect(f"no audio for {self.cfg.no_audio_s:g} s")

    def poll(self) -> None:
        """Take what arrived and process it (one inference tick)."""
        blocks = self._q.take(None if self.live else self._step_frames())
        arrived = bool(blocks)
        if arrived and not self._ready:
            self._ready = True
            self.notifier.ready()
        if self.live:
            # idle since the last tick's work ended, not since it began: a machine whose every step is
            # slow never sits idle, and keeps the newest audio as before; a stopped process did sit
            stalled = time.monotonic() - self._idle_since > self.cfg.stale_after_s
            blocks = self._drop_stale(blocks, stalled)
        for b in blocks:
            self._feed_block(b)
        self._step_whole_hops()
        if arrived:
            # Stamped after the work, not before: on a slow machine working off a backlog can take
            # longer than no_audio_s, and a device that delivered all of it is not silent.
            self._last_audio = time.monotonic()
        for u in self.units:
            u.outputs.poll()
        self._idle_since = time.monotonic()

    def finish(self) -> None:
        """End of stream: flush the resampler, step the last whole hops, write pending clips."""
        if self._mix is not None:
            self._pieces.append(self._mix.process(b"", last=True))
        self._step_whole_hops(final=True)
        if self.saver is not None:
            self.saver.flush()
        err = getattr(self.source, "error", None)
        if err is not None:
            raise err

    def _drop_stale(self, blocks: list[Block], stalled: bool) -> list[Block]:
        """Keep at most the newest ``stale_after_s`` of audio -- none at all when the loop itself
        sat idle for longer than that (``stalled``): what waits then was queued before the stall,
        or is the first of its backlog, which the audio thread may still be handing over."""
        rate = self._src.rate_hz
        keep_frames = 0 if stalled else round(self.cfg.stale_after_s * rate)
        total = sum(b.frames for b in blocks)
        if total <= keep_frames or not blocks:
            return blocks
        dropped = 0
        while blocks and total - dropped > keep_frames:
            dropped += blocks[0].frames
            blocks = blocks[1:]
        self.stats.dropped_s += dropped / rate
        self.stats.stale_drops += 1
        # At most one warning a minute: a machine that is always too slow must not flood the journal.
        now = time.monotonic()
        quiet = now - self._last_stale_warning < STALE_WARNING_EVERY_S
        (log.debug if quiet else log.warning)(
            "inference fell behind by %.1f s: dropped %.1f s of stale audio and reset the model "
            "(%d such drop(s) so far)",
            total / rate,
            dropped / rate,
            self.stats.stale_drops,
        )
        if not quiet:
            self._last_stale_warning = now
        return blocks

    # -- audio to model steps ----------------------------------------------------------
    def _segment_end_s(self) -> float:
        return self._seg_start_s + self._seg_samples / self.params.sample_rate

    def _feed_block(self, b: Block) -> None:
        if b.session != self._session:
            return  # a late block of a closed session
        if self._expected_frame is None or b.start_frame != self._expected_frame:
            self._start_segment(b)
        self._expected_frame = b.end_frame
        self.stats.audio_s += b.frames / self._src.rate_hz
        self._pieces.append(self._mixer.process(b.data))

    def _start_segment(self, b: Block) -> None:
        """Begin a continuous stretch of audio at block ``b``: everything stateful restarts."""
        if self._expected_frame is not None:
            self._step_whole_hops(final=True)  # finish the old stretch first
            self.stats.resets += 1
        self._pending, self._pieces = np.zeros(0, np.float32), []
        self._mixer.reset()
        self._reset_models()
        if self.saver is not None:
            self.saver.discontinuity()
        self._gated, self._skipped = False, None
        self._seg_start_s = self._session_offset_s + b.start_frame / self._src.rate_hz
        self._seg_samples = 0

    def _step_whole_hops(self, final: bool = False) -> None:
        """Live: one step over every whole output hop that has arrived. A file: steps of
        exactly ``chunk_samples`` (uniform, whatever the block sizes), whole hops at the end."""
        if self._pieces:
            self._pending = np.concatenate([self._pending, *self._pieces])
            self._pieces = []
        hop = self.params.output_hop_samples
        if self.live or final:
            self._step(len(self._pending) // hop * hop)
        else:
            while len(self._pending) >= self.params.chunk_samples:
                self._step(self.params.chunk_samples)

    def _step(self, n: int) -> None:
        if n == 0:
            return
        chunk, self._pending = self._pending[:n], self._pending[n:]
        start_s = self._segment_end_s()
        self._seg_samples += n
        if self.saver is not None:
            self.saver.feed(chunk, start_s)
        if self.gate is not None and not self.gate.update(chunk, n / self.params.sample_rate):
            self.stats.skipped_steps += 1
            self._gated, self._skipped = True, (chunk, start_s)
            return
        if self._gated:
            # The gate reopens: start the model fresh, with the last skipped step as lead-in.
            self._gated = False
            self._reset_models()
            if self._skipped is not None:
                self._run_model(*self._skipped)
                self._skipped = None
        self._run_model(chunk, start_s)

    def _reset_models(self) -> None:
        for u in self.units:
            u.engine.reset()
            u.decider.reset()

    def _run_model(self, chunk: np.ndarray, start_s: float) -> None:
        self.stats.steps += 1
        for i, u in enumerate(self.units):
            probs = u.engine.step(chunk)
            if i == 0:
                end_s = start_s + len(chunk) / self.params.sample_rate
                if self.on_step is not None:
                    self.on_step(end_s, float(probs.max()))
                if self.on_frames is not None:
                    self.on_frames(start_s, probs)
            if self.saver is not None:
                self.saver.scored(start_s, probs, u.decider.cfg.threshold)
            for det in u.decider.feed(probs, start_s):
                det = dataclasses.replace(det, keyword=u.keyword)
                u.count += 1
                self.stats.detections += 1
                self.stats.last, self.stats.last_wall = det, time.time()
                u.outputs.detection(det)
                if self.saver is not None:
                    self.saver.detected(det)
                if self.on_detection is not None:
                    self.on_detection(det)

    def close_outputs(self) -> None:
        """Every keyword's outputs closed (LEDs off); one shared by several is closed once."""
        for u in self.units:
            u.outputs.close()  # Indicator and MqttOutput close once, whoever asks first

    # -- reporting ---------------------------------------------------------------------
    @property
    def dropped_s(self) -> float:
        live_q = self.queue.dropped_frames / self._src.rate_hz if self.queue is not None else 0.0
        return self.stats.dropped_s + self.stats._queue_dropped_s + live_q

    def status_text(self) -> str:
        s = self.stats
        if self.source is None:
            return (
                f"waiting for audio device {self.cfg.device!r}: {self._waiting_reason or 'opening'}"
                f"{self.outputs.status()}"
            )
        last = ""
        if s.last is not None:
            which = f"{s.last.keyword!r} " if len(self.units) > 1 else ""
            last = f", last {which}{datetime.fromtimestamp(s.last_wall).strftime('%H:%M:%S')} ({s.last.score:.2f})"
        counts = f" ({', '.join(f'{u.keyword} {u.count}' for u in self.units)})" if len(self.units) > 1 else ""
        gate = f", {s.skipped_steps} quiet steps skipped" if self.gate is not None else ""
        overruns = s.overflows + (self.source.overflows if self.source is not None else 0)
        gate += f", {overruns} ALSA overruns" if overruns else ""
        gate += self.saver.status() if self.saver is not None else ""
        keywords = ", ".join(repr(u.keyword) for u in self.units)
        return (
            f"listening for {keywords} on {self.device_name!r}: {s.detections} detection(s){counts}{last}; "
            f"dropped {self.dropped_s:.1f} s{gate}{self.outputs.status()}"
        )

    def _publish(self) -> None:
        if not self.notifier.enabled:
            return
        self.notifier.watchdog()
        self.notifier.status(self.status_text())
