"""Backgrounds for the clips: audio folders when given, generated noise otherwise (and too).

Folders come from ``[data] background_dirs`` and, with ``[data] packaged_backgrounds`` (the
default), from the real recorded sound that Debian packages install (:data:`PACKAGED_SOUNDS`;
``make setup`` installs them, and a machine without them trains on the rest).

Generated kinds: coloured noise with a random spectral slope (``alpha`` 0 = white, 1 = pink,
2 = brown, anything between), mains hum with harmonics over noise, and babble (several
non-keyword utterances of the same split overlapping). Folder backgrounds are read as a
random window of the clip's length (looped when shorter). Everything returned is float32
mono ``[samples]``; levels are set later by the mixer (SNR).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.params import AudioParams
from train.audio_io import AudioReadError, duration_s, list_audio_files, read_audio

log = logging.getLogger(__name__)


def coloured_noise(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^alpha, unit RMS, float32 ``[n]``."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.arange(n // 2 + 1, dtype=np.float64)
    f[0] = 1.0  # no infinite DC; the DC bin is zeroed below anyway
    spectrum *= f ** (-alpha / 2)
    spectrum[0] = 0
    noise = np.fft.irfft(spectrum, n)
    return (noise / (np.std(noise) + 1e-12)).astype(np.float32)


def hum(n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum (50 or 60 Hz and harmonics) over a little pink noise, unit RMS."""
    base = 50.0 if rng.random() < 0.5 else 60.0
    t = np.arange(n) / sample_rate
    tone = sum(
        rng.uniform(0.1, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi)) for k in range(1, 6)
    )
    out = tone + 0.3 * coloured_noise(n, 1.0, rng)
    return (out / (np.std(out) + 1e-12)).astype(np.float32)


def babble(n: int, utterances: Sequence[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Overlapping speech: each utterance repeated at random offsets over the whole clip."""
    out = np.zeros(n, dtype=np.float32)
    for u in utterances:
        u = u / (np.std(u) + 1e-12)
        pos = int(rng.integers(-len(u), max(1, n // 4)))
        while pos < n:
            a, b = max(0, pos), min(n, pos + len(u))
            out[a:b] += u[a - pos : b - pos]
            pos += len(u) + int(rng.integers(0, max(1, n // 8)))
    return (out / (np.std(out) + 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class PackagedSound:
    """Real recorded sound a system package installs, used as backgrounds when present."""

    package: str
    """The Debian/Ubuntu package that installs it (``sudo apt-get install <package>``)."""
    pattern: str
    """Glob of its folder; where several versions match, the last in sort order is used."""
    licence: str
    what: str


PACKAGED_SOUNDS = (
    PackagedSound(
        "wesnoth-music",
        "/usr/share/games/wesnoth/*/data/core/music",
        "GPL-2.0-or-later",
        "The Battle for Wesnoth's soundtrack (41 orchestral tracks, 2.1 h in wesnoth-1.16-music)",
    ),
)
"""Measured as backgrounds on four real keywords: docs/experiments.md, "Real music behind the words"."""


def packaged_folders() -> tuple[list[tuple[PackagedSound, Path]], list[PackagedSound]]:
    """(sound, folder) of each of :data:`PACKAGED_SOUNDS` installed here; and the ones that are not."""
    import glob

    found, missing = [], []
    for sound in PACKAGED_SOUNDS:
        folders = sorted(Path(p) for p in glob.glob(sound.pattern) if Path(p).is_dir())
        if folders:
            found.append((sound, folders[-1]))
        else:
            missing.append(sound)
    return found, missing


def background_files(folder: str | Path) -> tuple[list[tuple[Path, float]], list[str]]:
    """(file, seconds) of every readable audio file under ``folder``; and one line per unreadable file."""
    if not Path(folder).is_dir():
        raise FileNotFoundError(f"background folder {folder} does not exist")
    found, unreadable = [], []
    for path in list_audio_files(folder):
        try:
            seconds = duration_s(path)
            if seconds <= 0:
                raise AudioReadError(f"audio file {path} holds no samples")
            found.append((path, seconds))
        except AudioReadError as exc:
            log.warning("skipping %s", exc)
            unreadable.append(str(exc))
    return found, unreadable


@dataclass
class BackgroundDraw:
    audio: np.ndarray
    name: str


def draw(
    n: int,
    params: AudioParams,
    rng: np.random.Generator,
    files: Sequence[tuple[str, float]],
    babble_source: Callable[[int], list[np.ndarray]],
    file_prob: float = 0.5,
) -> BackgroundDraw:
    """One background of ``n`` samples: a folder window (with ``file_prob`` when files exist) or
    generated noise (coloured 60%, babble 25%, hum 15%)."""
    if files and rng.random() < file_prob:
        path, seconds = files[int(rng.integers(len(files)))]
        try:
            return BackgroundDraw(_window(path, seconds, n, params, rng), f"file:{Path(path).name}")
        except AudioReadError as exc:  # vanished or changed since it was listed
            log.warning("background skipped: %s", exc)
    u = rng.random()
    if u < 0.6:
        alpha = float(rng.uniform(0.0, 2.0))
        return BackgroundDraw(coloured_noise(n, alpha, rng), f"noise:alpha={alpha:.2f}")
    if u < 0.85:
        voices = babble_source(int(rng.integers(3, 7)))
        if voices:
            return BackgroundDraw(babble(n, voices, rng), f"babble:{len(voices)}")
    return BackgroundDraw(hum(n, params.sample_rate, rng), "hum")


def _window(path, seconds: float, n: int, params: AudioParams, rng: np.random.Generator) -> np.ndarray:
    want_s = n / params.sample_rate
    start_s = float(rng.uniform(0, max(0.0, seconds - want_s)))
    audio = read_audio(path, params, start_s=start_s, duration_s=want_s)
    if len(audio) == 0:
        raise AudioReadError(f"audio file {path} holds no samples")
    reps = -(-n // len(audio))
    return np.tile(audio, reps)[:n].astype(np.float32)
