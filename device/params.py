"""The one source of truth for audio and feature numbers.

Every stage (clip synthesis, training, export, the daemon on the Pi) takes these
numbers from an :class:`AudioParams`. Training stores them in its checkpoints, export
writes them into ``model.onnx`` metadata, and the device reads them back from the model
file -- it never keeps a copy of its own. Derived sample counts are properties, so they
cannot drift from the millisecond values they come from.

Array convention used throughout the project: features are ``(time, features)``
(``[frames, n_mels]``; batched ``[batch, frames, n_mels]``); audio is float32 in
[-1, 1], mono, at ``sample_rate``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass


class ParamsError(ValueError):
    """Audio parameters that are inconsistent or unknown."""


@dataclass(frozen=True)
class AudioParams:
    sample_rate: int = 16000
    """Samples per second of the mono audio the model hears (Hz)."""
    window_ms: float = 25.0
    """Length of one analysis window (STFT frame) in milliseconds."""
    hop_ms: float = 10.0
    """Step between feature frames in milliseconds."""
    n_fft: int = 512
    """FFT size; the window is zero-padded up to it."""
    n_mels: int = 32
    """Number of mel bands per log-mel frame (inside the front end)."""
    output_stride: int = 8
    """Log-mel frames per model output frame (the front end's stride over time: one 96-number
    embedding, and one keyword probability, every 80 ms)."""
    label_window_ms: float = 400.0
    """Length of the run of positive labels that starts where a keyword ends (ms)."""
    infer_every_s: float = 0.48
    """How much audio the daemon feeds the model per inference step (s); a whole number of
    output frames (0.48 s = 6 frames of 80 ms)."""
    frontend: str = "speech_embedding@0140c2b1455c0167"
    """Identity of the pretrained front end inside the model: name and sha256 prefix of its
    weights file (``train.frontend``). A model trained on one front end cannot run on another."""

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append(f"sample_rate must be positive, got {self.sample_rate}")
        for name in ("window_ms", "hop_ms", "label_window_ms", "infer_every_s"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive, got {getattr(self, name)}")
        if not problems:
            for name, ms in (("window_ms", self.window_ms), ("hop_ms", self.hop_ms)):
                if abs(ms * self.sample_rate / 1000 - round(ms * self.sample_rate / 1000)) > 1e-9:
                    problems.append(f"{name}={ms} is not a whole number of samples at {self.sample_rate} Hz")
            if self.window_samples < self.hop_samples:
                problems.append("window_ms must be at least hop_ms")
            if self.n_fft < self.window_samples:
                problems.append(f"n_fft={self.n_fft} is shorter than the window ({self.window_samples} samples)")
            if self.output_stride < 1:
                problems.append("output_stride must be >= 1")
            chunk = self.infer_every_s * self.sample_rate
            if abs(chunk - round(chunk)) > 1e-9 or round(chunk) % self.output_hop_samples:
                problems.append(
                    f"infer_every_s={self.infer_every_s} is not a whole number of output frames "
                    f"({self.output_hop_samples} samples each)"
                )
        if problems:
            raise ParamsError("; ".join(problems))

    # -- derived sample counts -------------------------------------------------------
    @property
    def window_samples(self) -> int:
        return round(self.window_ms * self.sample_rate / 1000)

    @property
    def hop_samples(self) -> int:
        return round(self.hop_ms * self.sample_rate / 1000)

    @property
    def n_bins(self) -> int:
        """Number of one-sided FFT bins."""
        return self.n_fft // 2 + 1

    @property
    def output_hop_samples(self) -> int:
        """Audio samples per model output frame; every chunk fed to the model is a multiple."""
        return self.hop_samples * self.output_stride

    @property
    def output_hop_s(self) -> float:
        return self.output_hop_samples / self.sample_rate

    @property
    def chunk_samples(self) -> int:
        """Samples per daemon inference step (``infer_every_s``)."""
        return round(self.infer_every_s * self.sample_rate)

    @property
    def context_samples(self) -> int:
        """Samples of the previous chunk a window reaches back into (carried as state)."""
        return self.window_samples - self.hop_samples

    @property
    def label_window_frames(self) -> int:
        """Positive output frames after each keyword end."""
        return max(1, round(self.label_window_ms / 1000 / self.output_hop_s))

    def frames_for(self, n_samples: int) -> int:
        """Output frames (embeddings, probabilities) produced by ``n_samples`` of audio."""
        return n_samples // self.output_hop_samples

    # -- serialisation ---------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> AudioParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParamsError(f"unknown audio parameter(s): {', '.join(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AudioParams:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParamsError(f"audio parameters are not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ParamsError("audio parameters must be a JSON object")
        return cls.from_dict(data)

    def digest(self) -> str:
        """Short stable hash; equal digests mean identical audio numbers."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:12]
