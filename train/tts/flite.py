"""flite (Debian ``flite``): its built-in voices, with varied duration and pitch target.

There is no PyPI route for flite, so this runs the program (one process per render, ~50 ms).
Limited-domain voices (``awb_time`` only speaks clock times) are left out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np

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


def _command(req: Request, wav: Path) -> tuple[list[str], str | None]:
    s = dict(req.settings)
    options = ["-voice", req.voice.name]
    if "duration_stretch" in s:
        options += ["--setf", f"duration_stretch={s['duration_stretch']}"]
    if "f0_mean_hz" in s:
        options += ["--setf", f"int_f0_target_mean={s['f0_mean_hz']}"]
    return [*options, "-t", req.text, "-o", str(wav)], None


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    return program.render_each(PROGRAM, requests, _command)
