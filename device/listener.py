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
  a SIGSTOP firing 3 s late that way); if nothing waits yet, the first audio that comes is dropped
  (it would continue the stream where the stall began). The LED never fires on old audio.
- **A lost device is not fatal.** A stream that dies or stops delivering for
  ``no_audio_s`` is closed and reopened with exponential backoff; each state change is
  logged once; the systemd watchdog keeps being pinged from this loop (a loop that hangs,
  e.g. inside a device open, stops pinging and systemd restarts the service).

Stream time (``time_s`` everywhere) is the position in the audio: for a file, seconds
from its start; live, seconds of audio since the first capture began (across a reconnect
it continues from the wall-clock gap).

With a file source (``live=False``) there is no clock: each step takes exactly
``infer_every_s`` of audio as soon as it is there, so results do not depend on machine speed.

The pieces, the way mycroft-precise splits its runner: :mod:`device.connection` owns the
device (open, reconnect with backoff, liveness), :mod:`device.audiopath` the audio (stale
dropping, segments, downmix hand-off, stepping each keyword's engine, decision and gate), and
:class:`Listener` here is the glue: the loop and its clock, the STATUS line, the outputs.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from device.audiopath import AudioPath, KeywordUnit
from device.clipsaver import Keepers
from device.connection import Backoff, ChannelError, Connection, Source
from device.decision import Decider, Detection
from device.downmix import Downmixer
from device.engine import Engine
from device.gate import EnergyGate
from device.heap import HeapTrim
from device.listenstats import Stats
from device.outputs import Outputs
from device.ringqueue import DropOldestQueue
from device.sdnotify import Notifier
from device.stopflag import StopFlag

__all__ = ["CaptureConfig", "ChannelError", "KeywordUnit", "Listener", "Source", "Stats"]

log = logging.getLogger(__name__)


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
        self.cfg = cfg
        self.live = live
        self.notifier = notifier or Notifier("")
        self.saver = saver
        self.gate = gate
        self.stats = Stats()
        self.conn = Connection(
            open_source,
            self.stats,
            device=cfg.device,
            queue_s=cfg.queue_s,
            no_audio_s=cfg.no_audio_s,
            backoff=Backoff(cfg.retry_min_s, cfg.retry_max_s),
            live=live,
        )
        self.path = AudioPath(
            self.params,
            self.units,
            self.stats,
            stale_after_s=cfg.stale_after_s,
            live=live,
            saver=saver,
            gate=gate,
            on_step=on_step,
            on_frames=on_frames,
            on_detection=on_detection,
        )
        self._ready = False
        self._idle_since = 0.0
        self.heap = HeapTrim()

    # The observers live on the audio path; settable here as before.
    @property
    def on_step(self) -> Callable[[float, float], None] | None:
        return self.path.on_step

    @on_step.setter
    def on_step(self, fn: Callable[[float, float], None] | None) -> None:
        self.path.on_step = fn

    @property
    def on_frames(self) -> Callable[[float, np.ndarray], None] | None:
        return self.path.on_frames

    @on_frames.setter
    def on_frames(self, fn: Callable[[float, np.ndarray], None] | None) -> None:
        self.path.on_frames = fn

    @property
    def on_detection(self) -> Callable[[Detection], None] | None:
        return self.path.on_detection

    @on_detection.setter
    def on_detection(self, fn: Callable[[Detection], None] | None) -> None:
        self.path.on_detection = fn

    @property
    def source(self) -> Source | None:
        return self.conn.source

    @property
    def queue(self) -> DropOldestQueue | None:
        return self.conn.queue

    @property
    def device_name(self) -> str:
        return self.conn.device_name

    # The open source and its queue: only used while connected (``source`` is set).
    @property
    def _src(self) -> Source:
        assert self.conn.source is not None, "no open audio source"
        return self.conn.source

    @property
    def _q(self) -> DropOldestQueue:
        assert self.conn.queue is not None, "no open audio source"
        return self.conn.queue

    # -- connection --------------------------------------------------------------------
    def connect(self) -> bool:
        """Try to open a source; on failure schedule the next try. True if audio can flow."""
        src = self.conn.open()
        if src is None:
            return False
        try:
            mix = Downmixer(src.rate_hz, src.channels, self.params.sample_rate, self.cfg.use_channels)
        except ValueError as exc:
            self.conn.close()
            raise ChannelError(f"[capture] use_channels: {exc} ({self.conn.device_name!r})") from None
        # stream time continues across a reconnect: from the wall-clock gap, never backwards
        self.path.start_session(self.conn.session, mix, max(self.path.segment_end_s, self.conn.session_start_s))
        self._idle_since = self.conn.opened_at
        log.info(
            "%slistening on %r (%d ch, %d Hz -> %d Hz mono, channels %s) for %s",
            "back: " if self.conn.waiting_reason else "",
            self.conn.device_name,
            src.channels,
            src.rate_hz,
            self.params.sample_rate,
            list(mix.use_channels),
            ", ".join(repr(u.keyword) for u in self.units),
        )
        self.conn.announced()
        return True

    def _check_alive(self) -> None:
        self.conn.check_alive()

    # -- the loop ----------------------------------------------------------------------
    def run(self, stop: StopFlag) -> None:
        """Listen until ``stop`` is set or the source ends (a file, or ``max_frames``)."""
        tick_s = self.params.infer_every_s
        next_tick = time.monotonic() + tick_s
        backoff = self.conn.backoff
        try:
            while not stop.is_set():
                if self.source is None:
                    if not backoff.due(time.monotonic()) or not self.connect():
                        self._publish()
                        stop.wait(min(tick_s, max(0.0, backoff.next_try - time.monotonic())))
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
                if self.live:
                    self.heap.tick(time.monotonic())
        finally:
            self.conn.close()

    def _step_frames(self) -> int:
        return max(1, round(self.params.infer_every_s * self._src.rate_hz))

    def poll(self) -> None:
        """Take what arrived and process it (one inference tick)."""
        blocks = self._q.take(None if self.live else self._step_frames())
        arrived = bool(blocks)
        if arrived and not self._ready:
            self._ready = True
            self.notifier.ready()
        # idle since the last tick's work ended, not since it began: a machine whose every step is
        # slow never sits idle, and keeps the newest audio as before; a stopped process did sit
        stalled = self.live and time.monotonic() - self._idle_since > self.cfg.stale_after_s
        self.path.feed(blocks, stalled)
        if arrived:
            # Stamped after the work, not before: on a slow machine working off a backlog can take
            # longer than no_audio_s, and a device that delivered all of it is not silent.
            self.conn.heard(time.monotonic())
        for u in self.units:
            u.outputs.poll()
        self._idle_since = time.monotonic()

    def finish(self) -> None:
        """End of stream: flush the resampler, step the last whole hops, write pending clips."""
        self.path.finish()
        err = getattr(self.source, "error", None)
        if err is not None:
            raise err

    def close_outputs(self) -> None:
        """Every keyword's outputs closed (LEDs off); one shared by several is closed once."""
        for u in self.units:
            u.outputs.close()  # Indicator and MqttOutput close once, whoever asks first

    # -- reporting ---------------------------------------------------------------------
    @property
    def dropped_s(self) -> float:
        return self.stats.dropped_s + self.stats._queue_dropped_s + self.conn.live_dropped_s

    def status_text(self) -> str:
        s = self.stats
        if self.source is None:
            return (
                f"waiting for audio device {self.cfg.device!r}: {self.conn.waiting_reason or 'opening'}"
                f"{self.outputs.status()}"
            )
        last = ""
        if s.last is not None:
            which = f"{s.last.keyword!r} " if len(self.units) > 1 else ""
            last = f", last {which}{datetime.fromtimestamp(s.last_wall).strftime('%H:%M:%S')} ({s.last.score:.2f})"
        counts = f" ({', '.join(f'{u.keyword} {u.count}' for u in self.units)})" if len(self.units) > 1 else ""
        gate = f", {s.skipped_steps} quiet steps skipped" if self.gate is not None else ""
        overruns = self.conn.overflows
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
