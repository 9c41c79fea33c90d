"""RHVoice (Debian ``rhvoice rhvoice-english``, in the ``non-free`` component): four English voices.

The voices are HTS models of recorded people: ``alan`` (Scottish, from the CMU ARCTIC ``awb``
recordings, so the same person as flite's ``awb``), ``bdl``, ``clb`` and ``slt`` (``slt`` is flite's
and festival's ``slt``). Debian's copyright file puts them under the LGPL-2.1+ with the rest of
RHVoice's data; its other English voices (``evgeniy-eng``, ``lyubov``) are CC BY-NC-ND and left out.
One ``RHVoice-test`` process per render (~0.1 s); rate and pitch vary per render.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.tts import Rendered, Request, Voice, program

ENGINE = "rhvoice"
LICENSE = "RHVoice and its English voices alan, bdl, clb, slt: LGPL-2.1+ (Debian's copyright file), any use"
"""What may be done with the voices (the dataset report lists it); all allow commercial use."""
VOICE_ROOT = Path("/usr/share/RHVoice/voices")
SPEAKERS = {"alan": "awb", "bdl": "bdl", "clb": "clb", "slt": "slt"}
"""The voices offered (the ones any use may be made of) -> the recorded person, shared with flite's
and festival's voices of the same person so that they land in the same split."""
PROGRAM = program.Program("RHVoice-test", "Debian packages rhvoice rhvoice-english, component non-free")
"""The program this engine runs (tests replace its ``path`` to play a machine without it)."""


def probe() -> str | None:
    return PROGRAM.probe()


def backend() -> str:
    return f"RHVoice ({PROGRAM.exe()})"


def voices() -> list[Voice]:
    present = {p.name for p in VOICE_ROOT.iterdir()} if VOICE_ROOT.is_dir() else set()
    return [Voice(ENGINE, n, f"person:{s}") for n, s in SPEAKERS.items() if n in present]


def random_settings(voice: Voice, rng: np.random.Generator) -> dict[str, float]:
    """Rate 70-130 % of the voice's own, pitch 80-125 % (RHVoice-test's percent scales, 100 = as is)."""
    return {"rate_pct": float(rng.integers(70, 131)), "pitch_pct": float(rng.integers(80, 126))}


def _command(req: Request, wav: Path) -> tuple[list[str], str | None]:
    s = dict(req.settings)
    options = ["-p", req.voice.name]
    if "rate_pct" in s:
        options += ["-r", str(int(s["rate_pct"]))]
    if "pitch_pct" in s:
        options += ["-t", str(int(s["pitch_pct"]))]
    return [*options, "-o", str(wav)], req.text


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    return program.render_each(PROGRAM, requests, _command)
