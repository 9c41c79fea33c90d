"""Helpers for the recording tests:
a real spoken word (espeak-ng), takes made of it, and file-backed ALSA microphones."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from device.params import AudioParams

REPO = Path(__file__).resolve().parents[2]
RATE = AudioParams().sample_rate
SILENCE_LEVEL = 1e-3
"""espeak-ng pads its output with near-digital silence; above this the word is being spoken."""


def espeak_word(folder: Path, text: str = "computer") -> Word:
    """``text`` spoken by espeak-ng, resampled to the model rate."""
    wav = folder / "espeak.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
    x, rate = sf.read(wav, dtype="float32")
    x = soxr.resample(x, rate, RATE).astype(np.float32)
    loud = np.flatnonzero(np.abs(x) > SILENCE_LEVEL)
    return Word(x, loud[0] / RATE, (loud[-1] + 1) / RATE)


@dataclass(frozen=True)
class Word:
    audio: np.ndarray
    """float32 ``[n]`` at :data:`RATE`, as espeak-ng said it (with its own silent edges)."""
    start_s: float
    """Where the speech starts inside :attr:`audio` (first sample above :data:`SILENCE_LEVEL`)."""
    end_s: float

    @property
    def speech_s(self) -> float:
        return self.end_s - self.start_s


def spoken_takes(
    word: Word,
    n: int,
    lead_s: float = 1.8,
    gap_s: float = 1.5,
    tail_s: float = 3.0,
    gain: float = 0.5,
    noise_dbfs: float = -55.0,
    seed: int = 0,
) -> np.ndarray:
    """``n`` repetitions of the word between pauses, over low white noise: float32 ``[samples]``."""
    gap = np.zeros(round(gap_s * RATE), np.float32)
    parts = [np.zeros(round(lead_s * RATE), np.float32)]
    for _ in range(n):
        parts += [word.audio * gain, gap]
    parts.append(np.zeros(round(tail_s * RATE), np.float32))
    audio = np.concatenate(parts)
    rng = np.random.default_rng(seed)
    return (audio + rng.standard_normal(len(audio)) * 10 ** (noise_dbfs / 20)).astype(np.float32)


def as_device_audio(mono: np.ndarray, channels: int, rate_hz: int, seed: int = 1) -> np.ndarray:
    """What a mic array would deliver: ``[n, channels]`` at ``rate_hz``, each channel the speech
    at its own gain plus its own noise."""
    y = soxr.resample(mono, RATE, rate_hz).astype(np.float32) if rate_hz != RATE else mono
    rng = np.random.default_rng(seed)
    gains = np.linspace(1.0, 0.6, channels, dtype=np.float32)
    return y[:, None] * gains + rng.standard_normal((len(y), channels)).astype(np.float32) * 0.001


@dataclass(frozen=True)
class AlsaMic:
    """A PCM called ``name`` in ``conf`` that replays a raw file (ALSA ``file`` plugin over ``null``).

    Not paced (all of it arrives at once) and stale after the end of the file: the command
    must stop by frame count (``--max-audio-s``)."""

    name: str
    conf: Path
    channels: int
    rate_hz: int
    duration_s: float

    def env(self) -> dict[str, str]:
        return {"ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{self.conf}"}


def make_alsa_mic(folder: Path, name: str, audio: np.ndarray, rate_hz: int) -> AlsaMic:
    """Write ``audio`` (``[n, channels]`` float32) as the raw S16_LE file behind a new PCM."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / f"{name}.raw"
    (np.clip(audio, -1, 32767 / 32768) * 32768).round().astype("<i2").tofile(raw)
    conf = folder / f"{name}.conf"
    conf.write_text(
        f'pcm.{name} {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n  infile "{raw}"\n  format "raw"\n}}\n'
    )
    return AlsaMic(name, conf, audio.shape[1], rate_hz, len(audio) / rate_hz)


def run_record(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60, **kw
) -> subprocess.CompletedProcess:
    """The real ``wakeword record`` (``python -m device.cli record``), output captured."""
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    kw.setdefault("stdin", subprocess.DEVNULL)
    return subprocess.run(
        [sys.executable, "-m", "device.cli", "record", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def record_from_mic(
    mic: AlsaMic, out: Path, takes: int, *options: str, config: Path | None = None
) -> subprocess.CompletedProcess:
    """``wakeword record`` of ``takes`` takes of "computer" into ``out``, every one kept (``--yes``),
    from all of ``mic``'s audio: opened at its own channels and rate, or as ``config``'s [capture]
    says. ``options``: more of the command's options."""
    source = (
        ["--config", str(config)]
        if config
        else ["--device", mic.name, "--channels", str(mic.channels), "--rate", str(mic.rate_hz)]
    )
    args = ["--keyword", "computer", "--out", str(out), "--takes", str(takes), "--yes", *source, *options]
    return run_record([*args, "--max-audio-s", f"{mic.duration_s:.3f}"], env=mic.env())
