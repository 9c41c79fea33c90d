"""The audio path: captured blocks -> mono model-rate audio -> model steps -> detections.

No device and no clock: feed it :class:`~device.ringqueue.Block` lists, read what the
callbacks and :class:`~device.listenstats.Stats` say. The rules it keeps:

- **Gaps reset.** Each block carries its session and stream position; a jump (queue
  overflow, stale drop, reconnected device) ends the *segment*: the last whole hops of the old
  one are stepped, then the model state, the resampler, the smoothing and the gate start
  again, so audio on the two sides of a gap is never glued together.
- **Stale audio is dropped** (live only). At most the newest ``stale_after_s`` of what
  arrived is kept -- none at all when the caller says the loop itself ``stalled``, and then
  none of the first audio that arrives after it either, if nothing waited yet (:func:`split_stale`).
  After a stall the audio thread may hand its backlog over across several ticks: as long as a
  tick brings more audio than the time since the one before (plus ``CATCH_UP_SLACK_S``), that
  audio is still the stall's backlog, however little of it there is, and it is dropped too.
- **Whole hops.** Live, each :meth:`AudioPath.feed` steps every whole output hop that has
  arrived; a file steps exactly ``chunk_samples`` at a time, so results do not depend on the
  block size; :meth:`AudioPath.finish` steps what whole hops are left.
- **The gate** may skip quiet steps; when it reopens, the model starts fresh with the last
  skipped step as lead-in.

Every :class:`KeywordUnit` (engine, decision rule, outputs) is stepped on the same audio.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from device.clipsaver import Keepers
from device.decision import Decider, Detection
from device.downmix import Downmixer
from device.engine import Engine
from device.gate import EnergyGate
from device.listenstats import Stats
from device.outputs import Outputs
from device.params import AudioParams
from device.ringqueue import Block

log = logging.getLogger(__name__)

STALE_WARNING_EVERY_S = 60.0
"""Repeated stale-audio drops are logged at most this often (the STATUS line counts them all)."""

CATCH_UP_SLACK_S = 0.5
"""After a stall, a tick that brings more than the time since the previous tick plus this much
audio is still catching up on the stall's backlog (s). Live capture hands audio over every few
tens of ms, so a tick on time brings about what the time since the last one holds."""


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


def split_stale(blocks: list[Block], keep_frames: int) -> tuple[list[Block], int]:
    """Drop the oldest whole blocks until at most ``keep_frames`` frames are left -> (the newest
    blocks, frames dropped). ``keep_frames = 0`` drops them all."""
    total = sum(b.frames for b in blocks)
    dropped = 0
    while blocks and total - dropped > keep_frames:
        dropped += blocks[0].frames
        blocks = blocks[1:]
    return blocks, dropped


class AudioPath:
    def __init__(
        self,
        params: AudioParams,
        units: list[KeywordUnit],
        stats: Stats,
        *,
        stale_after_s: float,
        live: bool = True,
        saver: Keepers | None = None,
        gate: EnergyGate | None = None,
        on_step: Callable[[float, float], None] | None = None,
        on_frames: Callable[[float, np.ndarray], None] | None = None,
        on_detection: Callable[[Detection], None] | None = None,
    ):
        """``params``: the audio numbers every unit's model hears (``infer_every_s`` may be the
        daemon's own step); ``on_step(end_time_s, max_prob)`` and ``on_frames(start_time_s,
        probs)`` observe the first unit's model, ``on_detection(det)`` every unit's detections."""
        self.params = params
        self.units = units
        self.stats = stats
        self.stale_after_s = stale_after_s
        self.live = live
        self.saver = saver
        self.gate = gate
        self.on_step = on_step
        self.on_frames = on_frames
        self.on_detection = on_detection
        self.session = -1
        self._mix: Downmixer | None = None
        self._expected_frame: int | None = None
        self._pending = np.zeros(0, np.float32)  # model-rate audio not yet stepped
        self._pieces: list[np.ndarray] = []  # ... and what arrived since (joined lazily)
        self._raw: list[bytes] = []  # captured bytes not yet downmixed: one conversion per tick
        self._session_offset_s = 0.0
        self._seg_start_s = 0.0
        self._seg_samples = 0
        self._gated = False
        self._skipped: tuple[np.ndarray, float] | None = None
        self._last_stale_warning = -float("inf")
        self._stall_pending = False  # the loop stalled and no audio has come since
        self._catching_up = False  # ... and the audio that has come since is still its backlog
        self._tick_started = time.monotonic()
        self._since_last_tick_s = 0.0

    @property
    def _mixer(self) -> Downmixer:
        assert self._mix is not None, "no session started"
        return self._mix

    # -- sessions and segments ---------------------------------------------------------
    def start_session(self, session: int, mix: Downmixer, offset_s: float) -> None:
        """Blocks of ``session`` come next, reduced by ``mix``; its frame 0 is at stream time
        ``offset_s``. Blocks of any other session are ignored from now on."""
        self.session, self._mix = session, mix
        self._stall_pending = self._catching_up = False  # a new session starts a new segment anyway
        self._session_offset_s = offset_s
        self._expected_frame = None

    @property
    def segment_end_s(self) -> float:
        """Stream time just after the last audio stepped."""
        return self._seg_start_s + self._seg_samples / self.params.sample_rate

    def feed(self, blocks: list[Block], stalled: bool = False) -> None:
        """Process what arrived (one inference tick). ``stalled``: the loop sat idle for longer
        than ``stale_after_s``, so all that waits is stale (live only)."""
        now = time.monotonic()
        self._since_last_tick_s, self._tick_started = now - self._tick_started, now
        if self.live:
            blocks = self._drop_stale(blocks, stalled)
        for b in blocks:
            self._feed_block(b)
        self._step_whole_hops()

    def finish(self) -> None:
        """End of stream: flush the resampler, step the last whole hops, write pending clips."""
        if self._mix is not None:
            self._downmix()
            self._pieces.append(self._mix.process(b"", last=True))
        self._step_whole_hops(final=True)
        if self.saver is not None:
            self.saver.flush()

    def _drop_stale(self, blocks: list[Block], stalled: bool) -> list[Block]:
        """Keep at most the newest ``stale_after_s`` of audio -- none at all when the loop itself
        sat idle for longer than that (``stalled``): what waits then was queued before the stall,
        or is the first of its backlog, which the audio thread may still be handing over."""
        # A stall with nothing waiting yet (SIGCONT woke this loop before the audio thread) holds
        # for the first audio that comes: it continues the stream right where the stall began, and
        # stepped on, would complete a keyword from before the stall -- seconds late.
        # After the stall's first audio, the audio thread may still be handing the rest of its
        # backlog over: a tick that brings more audio than the time since the last one is still
        # catching up, and what it brings is as old as the stall, however little of it there is.
        stalled = self._stall_pending = self._stall_pending or stalled
        if not blocks:
            return blocks
        rate = self._mixer.in_rate_hz
        total = sum(b.frames for b in blocks)
        backlog = self._catching_up and total / rate > self._since_last_tick_s + CATCH_UP_SLACK_S
        self._catching_up = stalled or backlog
        blocks, dropped = split_stale(blocks, 0 if self._catching_up else round(self.stale_after_s * rate))
        self._stall_pending = False
        if not dropped:
            return blocks
        self._count_drop(
            dropped / rate,
            "inference fell behind by %.1f s: dropped %.1f s of stale audio and reset the model "
            "(%d such drop(s) so far)",
            total / rate,
            dropped / rate,
        )
        return blocks

    def _count_drop(self, seconds: float, message: str, *args) -> None:
        """Count a drop of ``seconds`` of stale audio and say so (``message`` % ``args``, then the
        count so far). At most one warning a minute: a machine that is always too slow must not
        flood the journal."""
        self.stats.dropped_s += seconds
        self.stats.stale_drops += 1
        now = time.monotonic()
        quiet = now - self._last_stale_warning < STALE_WARNING_EVERY_S
        (log.debug if quiet else log.warning)(message, *args, self.stats.stale_drops)
        if not quiet:
            self._last_stale_warning = now

    def _feed_block(self, b: Block) -> None:
        if b.session != self.session:
            return  # a late block of a closed session
        if self._expected_frame is None or b.start_frame != self._expected_frame:
            self._start_segment(b)
        self._expected_frame = b.end_frame
        self.stats.audio_s += b.frames / self._mixer.in_rate_hz
        self._raw.append(b.data)

    def _downmix(self) -> None:
        """Turn the blocks that arrived into model-rate audio, in one call for all of them (a
        live capture delivers ~30 blocks a second; per block, the conversion cost more CPU than
        the model's steps between them). The resampler streams, so this equals block by block."""
        if self._raw:
            data = self._raw[0] if len(self._raw) == 1 else b"".join(self._raw)
            self._raw = []
            self._pieces.append(self._mixer.process(data))

    def _start_segment(self, b: Block) -> None:
        """Begin a continuous stretch of audio at block ``b``: everything stateful restarts."""
        if self._expected_frame is not None:
            self._step_whole_hops(final=True)  # finish the old stretch first
            self.stats.resets += 1
        self._pending, self._pieces, self._raw = np.zeros(0, np.float32), [], []
        self._mixer.reset()
        self.reset_models()
        if self.saver is not None:
            self.saver.discontinuity()
        self._gated, self._skipped = False, None
        self._seg_start_s = self._session_offset_s + b.start_frame / self._mixer.in_rate_hz
        self._seg_samples = 0

    # -- audio to model steps ----------------------------------------------------------
    def _step_whole_hops(self, final: bool = False) -> None:
        """Live: one step over every whole output hop that has arrived. A file: steps of
        exactly ``chunk_samples`` (uniform, whatever the block sizes), whole hops at the end."""
        self._downmix()
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
        start_s = self.segment_end_s
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
            self.reset_models()
            if self._skipped is not None:
                self._run_model(*self._skipped)
                self._skipped = None
        self._run_model(chunk, start_s)

    def reset_models(self) -> None:
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
            if self._held_up(len(chunk)):
                return
            for det in u.decider.feed(probs, start_s):
                det = dataclasses.replace(det, keyword=u.keyword)
                u.count += 1
                self.stats.detections += 1
                self.stats.last, self.stats.last_wall = det, time.time()
                # The report first: the outputs can take a while (a hook is a new process), and a
                # process stopped meanwhile would report a punctual detection seconds late.
                if self.on_detection is not None:
                    self.on_detection(det)
                u.outputs.detection(det)
                if self.saver is not None:
                    self.saver.detected(det)

    def _held_up(self, frames: int) -> bool:
        """Live: this tick has been at work for longer than ``stale_after_s`` -- the process was
        stopped or starved in the middle of it -- so what it steps is stale: nothing it decides
        may fire. The next audio starts a new segment (which restarts everything stateful)."""
        if not self.live:
            return False
        held_s = time.monotonic() - self._tick_started
        if held_s <= self.stale_after_s:
            return False
        self._expected_frame = None
        self._catching_up = True  # what the audio thread hands over next is the hold-up's backlog
        seconds = frames / self.params.sample_rate
        self._count_drop(
            seconds,
            "inference was held up for %.1f s in the middle of a step: dropped its %.2f s of audio and reset "
            "the model (%d such drop(s) so far)",
            held_s,
            seconds,
        )
        return True
