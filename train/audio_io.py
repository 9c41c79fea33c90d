"""Reading and writing audio files for the dataset stage.

Everything read here comes back as float32 mono in [-1, 1] at ``AudioParams.sample_rate``,
whatever the file's own rate and channel count (mono = mean of the channels; resampling by
soxr). Files are WAV, FLAC or Ogg (Vorbis, Opus): anything libsndfile reads. A file that cannot be decoded
raises :class:`AudioReadError` naming it; :func:`load_folder` skips and counts such files,
so one corrupt recording never stops a build. Writes are atomic (``device.fsutil``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from device.params import AudioParams
from device.wavio import write_wav  # noqa: F401  (the one WAV writer, re-exported for train/)

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".opus")
AUDIO_KINDS = "WAV, FLAC or Ogg"
"""What a folder of audio may hold (the words of an error message that found none of it)."""


class AudioReadError(ValueError):
    """An audio file that cannot be read; the message names the file."""


def to_mono(data: np.ndarray) -> np.ndarray:
    """``[samples]`` or ``[samples, channels]`` -> float32 ``[samples]`` (mean of channels)."""
    data = np.asarray(data, dtype=np.float32)
    return data.mean(axis=1, dtype=np.float32) if data.ndim == 2 else data


def resample(audio: np.ndarray, from_hz: int | float, to_hz: int | float) -> np.ndarray:
    """float32 mono ``[samples]`` from one rate to another (soxr, high quality)."""
    if from_hz == to_hz:
        return np.asarray(audio, dtype=np.float32)
    return soxr.resample(np.asarray(audio, dtype=np.float32), from_hz, to_hz, quality="HQ")


def read_audio(
    path: str | Path, params: AudioParams, start_s: float = 0.0, duration_s: float | None = None
) -> np.ndarray:
    """float32 mono ``[samples]`` at ``params.sample_rate`` of ``path`` (optionally one segment).

    Raises :class:`AudioReadError` (naming the file) when it is missing, corrupt or empty.
    """
    path = Path(path)
    try:
        with sf.SoundFile(str(path)) as f:
            native_hz = f.samplerate
            start = min(max(0, round(start_s * native_hz)), f.frames)
            frames = -1 if duration_s is None else max(0, round(duration_s * native_hz))
            f.seek(start)
            data = f.read(frames, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise AudioReadError(f"cannot read audio file {path}: {exc}") from None
    if data.shape[0] == 0 and duration_s is None:
        raise AudioReadError(f"audio file {path} holds no samples")
    if not np.all(np.isfinite(data)):
        raise AudioReadError(f"audio file {path} holds NaN or infinite samples")
    return resample(to_mono(data), native_hz, params.sample_rate)


def duration_s(path: str | Path) -> float:
    """Length of an audio file in seconds, from its header (AudioReadError if unreadable)."""
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioReadError(f"cannot read audio file {path}: {exc}") from None
    return info.frames / info.samplerate


def list_audio_files(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Sorted audio files (:data:`AUDIO_SUFFIXES`) under ``folder`` (hidden and temp files excluded)."""
    folder = Path(folder)
    pattern = "**/*" if recursive else "*"
    return sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".")
    )


@dataclass
class FolderAudio:
    """What :func:`load_folder` found: the clips it read and the files it had to skip."""

    clips: list[tuple[Path, np.ndarray]] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    """One line per skipped file: the reason, naming the file."""


def load_folder(folder: str | Path, params: AudioParams) -> FolderAudio:
    """Read every audio file under ``folder``; unreadable files are logged, skipped and counted."""
    found = FolderAudio()
    for path in list_audio_files(folder):
        try:
            found.clips.append((path, read_audio(path, params)))
        except AudioReadError as exc:
            log.warning("skipping %s", exc)
            found.unreadable.append(str(exc))
    return found
