"""What the labelling page draws and plays, computed from one audio file.

The page gets the audio as the model hears it -- mixed to mono and resampled to
``AudioParams.sample_rate`` -- so the waveform, the spectrogram, the playback and the spans
all share one time axis, whatever the file's own rate and channel count.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.image  # noqa: E402  (after choosing the backend)
import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402

from device.params import AudioParams  # noqa: E402
from train.label.catalog import audio_error  # noqa: E402

SPECTROGRAM_RANGE_DB = 80.0
"""Dynamic range shown in the spectrogram below its loudest cell (dB)."""
MAX_COLUMNS = 2000
"""Wider spectrograms are max-pooled down to this many columns (long files stay light)."""


class AudioReadError(ValueError):
    """The audio could not be decoded; one line."""


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray
    """float32 ``[n]`` mono in [-1, 1] at ``sample_rate``."""
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def load(path: Path, params: AudioParams) -> Audio:
    """Decode, mix channels to mono (mean) and resample to ``params.sample_rate``."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioReadError(audio_error(exc, path)) from None
    if len(data) == 0:
        raise AudioReadError("empty audio (no samples)")
    mono = data.mean(axis=1)
    if rate != params.sample_rate:
        mono = soxr.resample(mono, rate, params.sample_rate)
    return Audio(np.clip(mono, -1.0, 1.0).astype(np.float32), params.sample_rate)


def peaks(audio: Audio, columns: int) -> dict:
    """Min and max of the samples in each of ``columns`` equal slices (waveform drawing)."""
    columns = max(1, min(columns, len(audio.samples)))
    edges = np.linspace(0, len(audio.samples), columns + 1).astype(int)
    lo = np.minimum.reduceat(audio.samples, edges[:-1])
    hi = np.maximum.reduceat(audio.samples, edges[:-1])
    return {
        "duration_s": audio.duration_s,
        "sample_rate": audio.sample_rate,
        "min": np.round(lo, 4).tolist(),
        "max": np.round(hi, 4).tolist(),
    }


def spectrogram_db(audio: Audio, params: AudioParams) -> np.ndarray:
    """Log power spectrogram ``[frames, n_bins]`` float32 in dB, frames ``hop_ms`` apart."""
    x = audio.samples
    if len(x) < params.window_samples:
        x = np.pad(x, (0, params.window_samples - len(x)))
    frames = np.lib.stride_tricks.sliding_window_view(x, params.window_samples)[:: params.hop_samples]
    spec = np.abs(np.fft.rfft(frames * np.hanning(params.window_samples), n=params.n_fft)) ** 2
    return (10 * np.log10(spec + 1e-12)).astype(np.float32)


def spectrogram_png(audio: Audio, params: AudioParams) -> bytes:
    """The spectrogram as a PNG: time left to right, low frequencies at the bottom."""
    db = spectrogram_db(audio, params)
    if len(db) > MAX_COLUMNS:  # max-pool time so short events stay visible
        groups = np.array_split(np.arange(len(db)), MAX_COLUMNS)
        db = np.stack([db[g].max(axis=0) for g in groups])
    top = float(db.max())
    image = np.clip(db.T, top - SPECTROGRAM_RANGE_DB, top)  # [n_bins, frames]: a transpose
    buf = io.BytesIO()
    matplotlib.image.imsave(buf, image, cmap="magma", origin="lower", format="png")
    return buf.getvalue()


def wav_bytes(audio: Audio) -> bytes:
    """16-bit PCM WAV of the mono audio, for the page's player."""
    buf = io.BytesIO()
    sf.write(buf, audio.samples, audio.sample_rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()
