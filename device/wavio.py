"""PCM WAV files with the standard library only (the Pi has no soundfile/libsndfile).

Reading accepts 8/16/24/32-bit integer PCM with any channel count and rate and yields
interleaved int16 bytes (what the microphone path carries). Writing is 16-bit PCM and
atomic (:mod:`device.fsutil`), so a saved detection is either complete or absent.
"""

from __future__ import annotations

import logging
import os
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.fsutil import atomic_path

log = logging.getLogger(__name__)


class WavError(ValueError):
    """A file that is not a readable PCM WAV (one-line message)."""


@dataclass(frozen=True)
class WavInfo:
    channels: int
    rate_hz: int
    frames: int
    sample_width_bytes: int

    @property
    def duration_s(self) -> float:
        return self.frames / self.rate_hz


def _open(path: str | os.PathLike) -> wave.Wave_read:
    try:
        return wave.open(str(path), "rb")
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        raise WavError(
            f"{path}: not a PCM WAV file ({exc}); convert it with `sox IN -b 16 -e signed-integer OUT.wav`"
        ) from None
    except OSError as exc:
        raise WavError(f"{path}: cannot read ({exc.strerror or exc})") from None


def wav_info(path: str | os.PathLike) -> WavInfo:
    with _open(path) as w:
        info = WavInfo(w.getnchannels(), w.getframerate(), w.getnframes(), w.getsampwidth())
    if not 1000 <= info.rate_hz <= 384000 or info.channels < 1:
        raise WavError(f"{path}: header says {info.rate_hz} Hz and {info.channels} channel(s): not a usable WAV")
    return info


def _to_int16(raw: bytes, width: int) -> bytes:
    if width == 2:
        return raw
    if width == 1:  # unsigned 8-bit
        return ((np.frombuffer(raw, np.uint8).astype(np.int16) - 128) << 8).astype("<i2").tobytes()
    if width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        return b[:, 1:].copy().view("<i2").ravel().tobytes()  # keep the top 16 bits
    if width == 4:
        return (np.frombuffer(raw, "<i4") >> 16).astype("<i2").tobytes()
    raise WavError(f"unsupported sample width {width} bytes")


def iter_int16_blocks(path: str | os.PathLike, block_frames: int) -> Iterator[tuple[int, bytes]]:
    """Yield ``(frames, interleaved int16 bytes)`` blocks of the whole file, in order."""
    with _open(path) as w:
        width = w.getsampwidth()
        if width not in (1, 2, 3, 4):
            raise WavError(f"{path}: unsupported sample width {width} bytes")
        while True:
            try:
                raw = w.readframes(block_frames)
            except (wave.Error, EOFError) as exc:
                raise WavError(f"{path}: truncated or corrupt WAV data ({exc})") from None
            if not raw:
                return
            frame = width * w.getnchannels()
            if len(raw) % frame:  # the data ends mid-frame: keep the whole frames, say so once
                log.warning("%s: data ends mid-frame (%d stray bytes ignored)", path, len(raw) % frame)
                raw = raw[: len(raw) - len(raw) % frame]
                if not raw:
                    return
            data = _to_int16(raw, width)
            yield len(data) // (2 * w.getnchannels()), data


def read_mono_float(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Whole file as float32 mono in [-1, 1] (channels averaged) and its rate (Hz)."""
    info = wav_info(path)
    data = b"".join(d for _, d in iter_int16_blocks(path, 1 << 16))
    x = np.frombuffer(data, "<i2").reshape(-1, info.channels).astype(np.float32) / 32768.0
    return x.mean(axis=1), info.rate_hz


def write_wav(path: str | os.PathLike, audio: np.ndarray, rate_hz: int) -> Path:
    """Write float32 audio in [-1, 1] (``[n]`` mono or ``[n, channels]``) as 16-bit PCM, atomically."""
    a = np.asarray(audio, dtype=np.float32)
    if a.ndim == 1:
        a = a[:, None]
    pcm = (np.clip(a, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2")
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(pcm.shape[1])
            w.setsampwidth(2)
            w.setframerate(int(rate_hz))
            w.writeframes(pcm.tobytes())
    return Path(path)
