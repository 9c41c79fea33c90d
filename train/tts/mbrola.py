"""MBROLA diphone voices through the Debian ``espeak-ng`` program (``mbrola`` + ``mbrola-<voice>``,
component ``contrib``; opt-in: the voices may not be used in a product that is sold).

espeak-ng reads the text and sets the prosody; MBROLA concatenates diphones recorded by one person
per voice. English voices: ``us1`` (a woman), ``us2``, ``us3`` (men), ``en1`` (a British man), and
espeak-ng's accented English over other languages' voices (``mb-de1-en`` is English through the German
``de1`` diphones: an accent, as a non-native speaker has one). Each is offered when its database is
installed under ``/usr/share/mbrola``. One process per render; rate and pitch vary per render.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np

from train.tts import Rendered, Request, Voice, espeak, program

ENGINE = "mbrola"
LICENSE = (
    "MBROLA voice databases: free of charge for non-commercial, non-military use; they may not be sold or "
    "built into a product that is sold without the database owner's permission (mbrola-<voice> copyright "
    "files). Not in the default engines for that reason"
)
"""What may be done with the voices (the dataset report lists it)."""
DATABASES = Path("/usr/share/mbrola")
PROGRAM = program.Program("espeak-ng", "Debian packages espeak-ng mbrola mbrola-us1 (and other mbrola-<voice>)")
"""The program this engine runs (tests replace its ``path`` to play a machine without it)."""


def probe() -> str | None:
    if PROGRAM.probe() is not None:
        return PROGRAM.missing
    if program.which("mbrola") is None:
        return "the mbrola program is not installed (Debian package mbrola, component contrib)"
    return None


def backend() -> str:
    version = PROGRAM.version(r"(eSpeak NG text-to-speech: \S+)")
    return f"MBROLA through {version or 'espeak-ng'} ({PROGRAM.exe()})"


def _espeak_voices() -> Path | None:
    """espeak-ng's folder of MBROLA voice files (found as the espeak engine's program fallback finds its data)."""
    try:
        return espeak._Program().data_dir / "voices" / "mb"
    except (OSError, subprocess.SubprocessError):
        return None


def voices() -> list[Voice]:
    """Every English MBROLA voice of espeak-ng whose database is installed; one speaker per database."""
    folder = _espeak_voices()
    if folder is None or not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.iterdir()):
        match = re.fullmatch(r"mb-(us\d|en\d)|mb-([a-z]{2}\d)-en", path.name)
        if not match:
            continue
        database = match.group(1) or match.group(2)
        if (DATABASES / database / database).is_file():
            out.append(Voice(ENGINE, path.name, f"mbrola+{database}"))
    return out


def random_settings(voice: Voice, rng: np.random.Generator) -> dict[str, float]:
    """Speaking rate 125-210 words/min (espeak-ng's default 175), pitch 25-75 (of 0-99, 50 = the voice's own)."""
    return {"rate_wpm": float(rng.integers(125, 211)), "pitch": float(rng.integers(25, 76))}


def _command(req: Request, wav: Path) -> tuple[list[str], str | None]:
    s = dict(req.settings)
    options = ["-v", req.voice.name, "-w", str(wav)]
    if "rate_wpm" in s:
        options += ["-s", str(int(s["rate_wpm"]))]
    if "pitch" in s:
        options += ["-p", str(int(s["pitch"]))]
    return [*options, "--stdin"], req.text


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    return program.render_each(PROGRAM, requests, _command)
