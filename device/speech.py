"""Finding the spoken part of a take: pure functions over float32 mono audio, no I/O.

Used by ``wakeword record`` (device/record.py) on the workstation or a Pi, so it needs numpy
only. Speech is found from frame energy against the noise floor, with hysteresis:

1. frame energies in dBFS over ``frame_ms`` frames, measured in the speech band ``band_hz``
   (mains hum, rumble and hiss outside it would otherwise bury a quiet word);
2. the noise floor is a low percentile of those energies (a take always holds some
   silence before and after the word), or is given (measured at the start of a session);
3. frames louder than ``floor + start_db`` are *core* speech; a run of frames louder than
   ``floor + keep_db`` (the lower threshold) is kept when it holds at least
   ``min_speech_ms`` of core frames, so soft onsets and endings stay attached to the
   loud middle while clicks and thumps are dropped;
4. kept runs closer than ``merge_gap_ms`` are joined (the closure before a "p" or "t", the
   pause between the words of a phrase); the span runs from the first kept run to the
   last one.

:class:`Endpointer` applies the same thresholds incrementally to decide, while recording,
when a take has started and when it is over; :func:`find_speech` then trims it exactly.

Why by hand: ``librosa.effects.split`` thresholds against the loudest frame (one loud click
moves it) and is not on the Pi; webrtcvad is a C extension without maintained releases; neural
VADs need model files. A take is one speaker close to the microphone, where band energy with
hysteresis is enough: on ../shared/data it finds speech in 411/411 + 55/57 "computer" clips and
40/40 other words (the two misses: speech peaking only about 13 dB over the noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


@dataclass(frozen=True)
class SpeechConfig:
    frame_ms: float = 10.0
    """Step between energy frames (ms); spans and decisions fall on these."""
    window_ms: float = 25.0
    """Analysis window of a frame, centred on it (ms); longer than a pitch period (up to ~12 ms
    for a low voice), so a voiced sound reads as steady energy rather than a pulse train."""
    band_hz: tuple[float, float] = (250.0, 4000.0)
    """Frequency band whose energy counts (Hz): where speech is loud and room noise is not."""
    start_db: float = 12.0
    """How far above the noise floor a frame must be to count as core speech (dB)."""
    keep_db: float = 6.0
    """Lower threshold that extends a run of speech to its soft edges (dB above the floor)."""
    min_speech_ms: float = 80.0
    """Core speech a run needs to be kept; shorter bursts (clicks, a key press) are dropped (ms)."""
    merge_gap_ms: float = 400.0
    """Quieter gaps shorter than this inside speech are bridged (stop closures, word pauses) (ms)."""
    noise_percentile: float = 10.0
    """Percentile of frame energies taken as the noise floor when none is given."""
    min_level_dbfs: float = -65.0
    """Frames quieter than this are never speech, however quiet the floor (digital silence)."""
    pad_ms: float = 120.0
    """Audio kept before and after the speech when trimming (ms)."""
    end_silence_ms: float = 700.0
    """Endpointer: silence after speech that ends a take (ms); longer than ``merge_gap_ms``."""

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.min_speech_ms < 0 or self.merge_gap_ms < 0 or self.pad_ms < 0:
            raise ValueError("frame_ms must be positive; min_speech_ms, merge_gap_ms, pad_ms >= 0")
        if self.window_ms < self.frame_ms:
            raise ValueError(f"window_ms ({self.window_ms}) must be at least frame_ms ({self.frame_ms})")
        if not 0 <= self.keep_db <= self.start_db:
            raise ValueError(f"need 0 <= keep_db <= start_db, got {self.keep_db}, {self.start_db}")
        if not 0 <= self.noise_percentile <= 100:
            raise ValueError(f"noise_percentile must be in [0, 100], got {self.noise_percentile}")
        if not 0 <= self.band_hz[0] < self.band_hz[1]:
            raise ValueError(f"band_hz must be (low, high) with 0 <= low < high, got {self.band_hz}")
        if self.end_silence_ms <= self.merge_gap_ms:
            raise ValueError("end_silence_ms must be longer than merge_gap_ms, or a pause would end a take")

    def frame_samples(self, sample_rate: int) -> int:
        return max(1, round(self.frame_ms * sample_rate / 1000))

    def frames(self, ms: float) -> int:
        """A duration in ms as a whole number of frames (at least one where ms > 0)."""
        return max(1 if ms > 0 else 0, round(ms / self.frame_ms))


@dataclass(frozen=True)
class Span:
    start: int
    """First sample of the speech."""
    end: int
    """One past the last sample of the speech."""

    @property
    def length(self) -> int:
        return self.end - self.start

    def seconds(self, sample_rate: int) -> tuple[float, float]:
        return self.start / sample_rate, self.end / sample_rate


def window_geometry(sample_rate: int, cfg: SpeechConfig) -> tuple[int, int, int]:
    """``(frame_samples, window_samples, lead_samples)``: frame ``i``'s window starts
    ``lead_samples`` before sample ``i * frame_samples`` and is ``window_samples`` long."""
    frame_samples = cfg.frame_samples(sample_rate)
    win = max(frame_samples, round(cfg.window_ms * sample_rate / 1000))
    return frame_samples, win, (win - frame_samples) // 2


def frame_db(audio: np.ndarray, sample_rate: int, cfg: SpeechConfig) -> np.ndarray:
    """Energy in ``cfg.band_hz`` of each whole ``frame_ms`` frame, ``[n_frames]`` float64 in dBFS.

    ``audio``: float32/float64 ``[n]`` in [-1, 1] at ``sample_rate``; a trailing partial frame
    is ignored. Frame ``i`` is measured over a ``window_ms`` Hann window centred on samples
    ``[i * frame, (i + 1) * frame)`` (zeros beyond the ends). Scaled so that a full-scale sine
    inside the band reads -3 dB, as its RMS does.
    """
    frame_samples, win, lead = window_geometry(sample_rate, cfg)
    n_frames = len(audio) // frame_samples
    padded = np.zeros(n_frames * frame_samples + win - frame_samples, dtype=np.float64)
    padded[lead : lead + n_frames * frame_samples] = audio[: n_frames * frame_samples]
    return windowed_db(padded, n_frames, sample_rate, cfg)


def windowed_db(padded: np.ndarray, n_frames: int, sample_rate: int, cfg: SpeechConfig) -> np.ndarray:
    """Band energy (dBFS) of ``n_frames`` windows ``padded[i * frame : i * frame + window]``."""
    frame_samples, win, _ = window_geometry(sample_rate, cfg)
    if n_frames <= 0:
        return np.zeros(0, dtype=np.float64)
    frames = np.lib.stride_tricks.sliding_window_view(padded, win)[::frame_samples][:n_frames]
    window = np.hanning(win + 2)[1:-1]  # no zero ends: every sample counts
    n_fft = 1 << max(0, win - 1).bit_length()
    spectrum = np.fft.rfft(frames * window, n=n_fft)
    freqs_hz = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    band = (freqs_hz >= cfg.band_hz[0]) & (freqs_hz <= cfg.band_hz[1])
    # Parseval over the windowed frame: mean power = 2 * sum |X_k|^2 / (n_fft * sum w^2), one-sided.
    power = 2.0 * np.sum(np.abs(spectrum[:, band]) ** 2, axis=1) / (n_fft * np.sum(window * window))
    return 10.0 * np.log10(power + _EPS)


def level_dbfs(audio: np.ndarray) -> float:
    """RMS level of a block in dBFS (for the level meter)."""
    if len(audio) == 0:
        return 10.0 * np.log10(_EPS)
    x = np.asarray(audio, dtype=np.float64)
    return float(10.0 * np.log10(np.mean(x * x) + _EPS))


def noise_floor_db(energies_db: np.ndarray, cfg: SpeechConfig) -> float:
    """The noise floor (dBFS) of a run of frame energies: their ``noise_percentile``."""
    if len(energies_db) == 0:
        return 10.0 * np.log10(_EPS)
    return float(np.percentile(energies_db, cfg.noise_percentile))


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[start, end)`` index pairs of the True runs of a boolean array."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def speech_frames(energies_db: np.ndarray, floor_db: float, cfg: SpeechConfig) -> tuple[int, int] | None:
    """``[first, last)`` frame range of the speech in a run of frame energies, or None."""
    start_thr = max(floor_db + cfg.start_db, cfg.min_level_dbfs)
    keep_thr = max(floor_db + cfg.keep_db, cfg.min_level_dbfs)
    core = energies_db > start_thr
    min_core = cfg.frames(cfg.min_speech_ms)
    kept = [(a, b) for a, b in _runs(energies_db > keep_thr) if core[a:b].sum() >= max(1, min_core)]
    if not kept:
        return None
    merged = [kept[0]]
    for a, b in kept[1:]:
        if a - merged[-1][1] < cfg.frames(cfg.merge_gap_ms):
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    return merged[0][0], merged[-1][1]


def find_speech(
    audio: np.ndarray, sample_rate: int, cfg: SpeechConfig = SpeechConfig(), floor_db: float | None = None
) -> Span | None:
    """The spoken part of ``audio`` (float32 mono ``[n]`` at ``sample_rate`` Hz), or None.

    ``floor_db``: the noise floor in dBFS if known; otherwise it is estimated from ``audio``.
    The span's edges fall on frame boundaries.
    """
    fs = cfg.frame_samples(sample_rate)
    energies = frame_db(audio, sample_rate, cfg)
    floor = noise_floor_db(energies, cfg) if floor_db is None else floor_db
    frames = speech_frames(energies, floor, cfg)
    if frames is None:
        return None
    return Span(int(frames[0]) * fs, int(frames[1]) * fs)


def trim(audio: np.ndarray, span: Span, sample_rate: int, cfg: SpeechConfig = SpeechConfig()) -> tuple[np.ndarray, int]:
    """Cut ``span`` out of ``audio`` with ``pad_ms`` on each side (clipped to the audio).

    Returns the trimmed audio (a copy) and the sample in ``audio`` where it starts, so the
    speech lies at ``[span.start - offset, span.end - offset)`` of the result.
    """
    pad = round(cfg.pad_ms * sample_rate / 1000)
    start, end = max(0, span.start - pad), min(len(audio), span.end + pad)
    return np.array(audio[start:end], copy=True), start


class Endpointer:
    """Decides, block by block, when a take's speech has started and when it has ended.

    Feed float32 mono blocks of any size with :meth:`feed`; ``started`` becomes True once a
    frame run above ``floor + start_db`` lasted ``min_speech_ms``, ``ended`` once
    ``end_silence_ms`` of frames at or below ``floor + keep_db`` followed. It sees exactly the
    energies :func:`frame_db` gives for the whole stream (a frame is measured once its window
    is complete, half a window after the frame), so the block size cannot change a decision.
    ``started_frame`` / ``ended_frame`` say at which frame each decision fell.
    """

    def __init__(self, floor_db: float, sample_rate: int, cfg: SpeechConfig = SpeechConfig()):
        self.cfg = cfg
        self._sample_rate = sample_rate
        self._frame_samples, self._win, lead = window_geometry(sample_rate, cfg)
        self._start_thr = max(floor_db + cfg.start_db, cfg.min_level_dbfs)
        self._keep_thr = max(floor_db + cfg.keep_db, cfg.min_level_dbfs)
        self._buf = np.zeros(lead, dtype=np.float64)  # starts at stream sample frames * frame - lead
        self._frames = 0
        self._core_run = 0
        self._quiet_run = 0
        self.started = False
        self.ended = False
        self.started_frame: int | None = None
        self.ended_frame: int | None = None

    def feed(self, block: np.ndarray) -> None:
        self._buf = np.concatenate([self._buf, np.asarray(block, dtype=np.float64)])
        n = (len(self._buf) - (self._win - self._frame_samples)) // self._frame_samples
        if n <= 0:
            return
        energies = windowed_db(self._buf, n, self._sample_rate, self.cfg)
        self._buf = self._buf[n * self._frame_samples :]
        for db in energies:
            self._step(db)
            self._frames += 1

    def _step(self, db: float) -> None:
        if self.ended:
            return
        if not self.started:
            self._core_run = self._core_run + 1 if db > self._start_thr else 0
            self.started = self._core_run >= max(1, self.cfg.frames(self.cfg.min_speech_ms))
            self.started_frame = self._frames if self.started else None
            return
        self._quiet_run = 0 if db > self._keep_thr else self._quiet_run + 1
        self.ended = self._quiet_run >= self.cfg.frames(self.cfg.end_silence_ms)
        self.ended_frame = self._frames if self.ended else None
