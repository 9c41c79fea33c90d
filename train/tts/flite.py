"""flite (Debian ``flite``): its built-in voices, with varied duration and pitch target.

There is no PyPI route for flite, so this runs the program (one process per render, ~50 ms).
Limited-domain voices (``awb_time`` only speaks clock times) are left out.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from train.tts import Rendered, Request, Voice, program

ENGINE = "flite"
LICENSE = "flite and its CMU voices: BSD-style, any use (CMU Speech Group)"
"""What may be done with the voices (the dataset report lists it); all allow commercial use."""
LIMITED_DOMAIN = {"awb_time"}
# Built-in voices that are the same recorded person (kal16 is kal at 16 kHz).
SPEAKERS = {"kal": "kal", "kal16": "kal", "awb": "awb", "rms": "rms", "slt": "slt"}
PROGRAM = program.Program("flite", "Debian package flite")
"""The program this engine runs (tests replace its ``path`` to play a machine without it)."""


def probe() -> str | None:
    return PROGRAM.probe()


def backend() -> str:
    exe = PROGRAM.exe()
    version = PROGRAM.version(r"version:\s*(\S+)")
    return f"{version or 'flite'} ({exe})"


def voices() -> list[Voice]:
    out = subprocess.run([PROGRAM.exe(), "-lv"], capture_output=True, text=True, timeout=30).stdout
    names = out.split(":", 1)[-1].split()
    return [Voice(ENGINE, n, f"person:{SPEAKERS.get(n, n)}") for n in names if n not in LIMITED_DOMAIN]


def random_settings(voice: Voice, rng: np.random.Generator) -> dict[str, float]:
    """Duration stretch 0.8-1.35 (>1 is slower); f0 target 85-150 Hz (diphone voices follow it)."""
    return {"duration_stretch": round(float(rng.uniform(0.8, 1.35)), 3), "f0_mean_hz": float(rng.integers(85, 151))}


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    out: list[Rendered | str] = []
    with tempfile.TemporaryDirectory(prefix="flite-") as tmp:
        wav = Path(tmp) / "out.wav"
        for req in requests:
            s = dict(req.settings)
            options = ["-voice", req.voice.name]
            if "duration_stretch" in s:
                options += ["--setf", f"duration_stretch={s['duration_stretch']}"]
            if "f0_mean_hz" in s:
                options += ["--setf", f"int_f0_target_mean={s['f0_mean_hz']}"]
            wav.unlink(missing_ok=True)
            try:
                proc = subprocess.run(
                    [PROGRAM.exe(), *options, "-t", req.text, "-o", str(wav)],
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                if proc.returncode != 0 or not wav.exists():
                    raise ValueError(proc.stderr.strip()[:200] or f"exit status {proc.returncode}")
                audio, rate = sf.read(str(wav), dtype="float32")
                out.append(Rendered(audio, rate))
            except (ValueError, OSError, subprocess.SubprocessError, sf.LibsndfileError) as exc:
                out.append(f"{req.voice.id}: {exc}")
    return out
