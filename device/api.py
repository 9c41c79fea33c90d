"""Detection inside your own Python program: the daemon's engine and decision rule, fed by you.

    from device.api import Detector

    det = Detector("model.onnx")                 # threshold etc. from the model's calibration
    for pcm in my_audio_source():                # int16 or float samples, any length, or int16 bytes
        for hit in det.feed(pcm, sample_rate=44100):
            print(det.keyword, hit.time_s, hit.score)
    det.scores                                   # per-frame probabilities of the last feed (80 ms frames)
    det.reset()                                  # a new, unrelated stream

The very same :class:`device.engine.Engine` (streaming ONNX, state carried between calls) and
:class:`device.decision.Decider` the daemon runs; audio of another rate is resampled with
soxr as the daemon's capture does, and several channels (``[frames, channels]``) are averaged.
Feeding a stream in 1 ms or 10 s pieces gives the same detections.
"""

from __future__ import annotations

import os

import numpy as np

from device.config import DetectConfig
from device.decision import Decider, Detection
from device.engine import Engine

__all__ = ["Detector", "Detection"]


class Detector:
    """One keyword model over one audio stream (make one per stream; :meth:`fork` shares the model)."""

    def __init__(
        self,
        model: str | os.PathLike | Engine,
        threshold: float | None = None,
        smoothing_frames: int | None = None,
        refractory_s: float | None = None,
        max_step_s: float = 0.96,
    ):
        """``model``: a ``model.onnx`` path (refused with :class:`device.engine.EngineError`, one
        line, when the daemon could not run it) or a loaded :class:`Engine`. The decision
        settings default to what the model was calibrated with. ``max_step_s``: the longest
        piece of audio one model step takes (bounds memory on long feeds)."""
        self.engine = model if isinstance(model, Engine) else Engine.load(model)
        self.decision = DetectConfig(threshold, smoothing_frames, refractory_s).resolve(self.engine.meta)
        hop = self.params.output_hop_samples
        self._max_step = max(hop, int(max_step_s * self.params.sample_rate) // hop * hop)
        self.reset()

    @property
    def params(self):
        return self.engine.params

    @property
    def keyword(self) -> str:
        return self.engine.meta.keyword

    @property
    def time_s(self) -> float:
        """Stream time (s) of the end of the last completed output frame."""
        return self._frames * self.params.output_hop_s

    def fork(self) -> Detector:
        """Another detector for another stream, sharing this one's loaded model (no second session)."""
        return Detector(
            self.engine.fork(),
            self.decision.threshold,
            self.decision.smoothing_frames,
            self.decision.refractory_s,
            self._max_step / self.params.sample_rate,
        )

    def reset(self) -> None:
        """Start a new stream: model state, decision history, resampler, clock."""
        self.engine.reset()
        self._decider = Decider(self.decision, self.params.output_hop_s)
        self._pending = np.zeros(0, np.float32)
        self._frames = 0
        self._rate: int | None = None
        self._resampler = None
        self.scores = np.zeros(0, np.float32)
        """Probabilities of the output frames the last :meth:`feed` completed."""

    def feed(self, pcm, sample_rate: int | None = None) -> list[Detection]:
        """More of the stream -> the detections it completed (stream times in s from the start).

        ``pcm``: a numpy array of int16 (full scale 32768) or float (full scale 1.0) samples,
        ``[frames]`` or ``[frames, channels]``, or bytes of little-endian int16 mono.
        ``sample_rate``: of this audio (default: the model's, 16 kHz); fixed for a stream.
        """
        audio = self._resampled(_as_float_mono(pcm), sample_rate or self.params.sample_rate)
        buf = np.concatenate([self._pending, audio]) if len(self._pending) else audio
        hop = self.params.output_hop_samples
        usable = len(buf) // hop * hop
        probs, found = [], []
        for start in range(0, usable, self._max_step):
            p = self.engine.step(buf[start : min(usable, start + self._max_step)])
            found += self._decider.feed(p, self.time_s)
            self._frames += len(p)
            probs.append(p)
        self._pending = buf[usable:].copy()
        self.scores = np.concatenate(probs) if probs else np.zeros(0, np.float32)
        return found

    def _resampled(self, audio: np.ndarray, rate: int) -> np.ndarray:
        if not isinstance(rate, (int, np.integer)) or not 1000 <= rate <= 384000:
            raise ValueError(f"sample_rate must be a whole number of Hz in 1000..384000, got {rate!r}")
        if self._rate is None:
            import soxr

            self._rate = int(rate)
            if rate != self.params.sample_rate:
                self._resampler = soxr.ResampleStream(int(rate), self.params.sample_rate, 1, dtype="float32")
        elif rate != self._rate:
            raise ValueError(f"this stream is at {self._rate} Hz, not {rate} Hz; reset() before another rate")
        if self._resampler is None:
            return audio
        return self._resampler.resample_chunk(audio)


def _as_float_mono(pcm) -> np.ndarray:
    """int16 / float samples, ``[frames]`` or ``[frames, channels]``, or int16 bytes -> float32 mono."""
    if isinstance(pcm, (bytes, bytearray, memoryview)):
        if len(pcm) % 2:
            raise ValueError(f"int16 bytes come in pairs; got {len(pcm)} bytes")
        pcm = np.frombuffer(pcm, "<i2")
    a = np.asarray(pcm)
    if a.ndim not in (1, 2):
        raise ValueError(f"pcm must be [frames] or [frames, channels], got shape {a.shape}")
    if a.dtype == np.int16:
        scale = 1 / 32768
    elif a.dtype.kind == "f":
        scale = 1.0
    else:
        raise ValueError(f"pcm must be int16 or float samples, got {a.dtype}")
    mono = a.astype(np.float32) if a.ndim == 1 else a.astype(np.float32).mean(axis=1)
    mono = mono * np.float32(scale) if scale != 1.0 else mono
    if not np.all(np.isfinite(mono)):
        raise ValueError("pcm holds NaN or infinite samples")
    return mono
