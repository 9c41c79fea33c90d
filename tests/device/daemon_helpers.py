"""Helpers for the device tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr

from device.params import AudioParams

REPO = Path(__file__).resolve().parents[2]
PARAMS = AudioParams()
RATE = PARAMS.sample_rate


def multichannel(mono16k: np.ndarray, channels: int, rate_hz: int, tone_channel: int, seed: int = 3) -> np.ndarray:
    """``[n, channels]`` float32 at ``rate_hz``: the clip on ``tone_channel``, low noise elsewhere."""
    y = soxr.resample(mono16k, RATE, rate_hz).astype(np.float32)
    rng = np.random.default_rng(seed)
    out = (rng.standard_normal((len(y), channels)) * 0.01).astype(np.float32)
    out[:, tone_channel] = y
    return out


def to_raw_int16(audio: np.ndarray, path: Path) -> Path:
    """Interleaved S16_LE raw file, the format the ALSA ``file`` plugin's ``infile`` replays."""
    (np.clip(audio, -1, 32767 / 32768) * 32768).round().astype("<i2").tofile(path)
    return path


@dataclass
class AlsaMics:
    """An ALSA config whose PCMs replay raw files (the ``file`` plugin over a ``null`` slave).

    The plugin is not paced (audio arrives much faster than real time) and repeats stale data
    after the end of its file, so tests stop by frame count (``--max-audio-s``)."""

    conf: Path
    dir: Path

    def env(self) -> dict[str, str]:
        return {"ALSA_CONFIG_PATH": f"/usr/share/alsa/alsa.conf:{self.conf}"}

    def raw(self, name: str) -> Path:
        return self.dir / f"{name}.raw"


def _env(extra: dict[str, str] | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for k in ("NOTIFY_SOCKET", "INVOCATION_ID", "WATCHDOG_USEC", "WATCHDOG_PID"):
        env.pop(k, None)
    env.update(extra or {})
    return env


def run_wakeword(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 60, **kw
) -> subprocess.CompletedProcess:
    """Run the real ``wakeword`` command (``python -m device.cli``) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "device.cli", *args],
        cwd=REPO,
        env=_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kw,
    )


def popen_wakeword(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "device.cli", *args],
        cwd=REPO,
        env=_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
