"""SVOX Pico (Debian ``libttspico-utils``, in the ``non-free`` component): its two English voices.

``en-US`` and ``en-GB`` are two recorded women (Pico's ``lh0`` and ``kh0`` data). Speed and pitch
vary per render through Pico's own markup (``<speed level>``, ``<pitch level>``: percent of the
voice's own, 100 = as is). One ``pico2wave`` process per render (~0.05 s).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from train.tts import Rendered, Request, Voice, program

ENGINE = "pico"
LICENSE = "SVOX Pico and its en-US/en-GB data: Apache-2.0 (Debian's copyright file), any use"
"""What may be done with the voices (the dataset report lists it); all allow commercial use."""
LANG_ROOT = Path("/usr/share/pico/lang")
VOICES = {"en-US": "lh0", "en-GB": "kh0"}
"""Pico's language -> its speaker's data name (files ``<language>_<speaker>_sg.bin``)."""
PROGRAM = program.Program("pico2wave", "Debian package libttspico-utils, component non-free")
"""The program this engine runs (tests replace its ``path`` to play a machine without it)."""


def probe() -> str | None:
    return PROGRAM.probe()


def backend() -> str:
    return f"SVOX Pico ({PROGRAM.exe()})"


def voices() -> list[Voice]:
    return [
        Voice(ENGINE, lang, f"pico+{who}")
        for lang, who in VOICES.items()
        if (LANG_ROOT / f"{lang}_{who}_sg.bin").is_file()
    ]


def random_settings(voice: Voice, rng: np.random.Generator) -> dict[str, float]:
    """Speed 75-130 % of the voice's own, pitch 75-125 % (Pico's markup levels)."""
    return {"speed_pct": float(rng.integers(75, 131)), "pitch_pct": float(rng.integers(75, 126))}


def _markup(text: str, settings: dict[str, float]) -> str:
    """The text with Pico's markup around it; ``<`` and ``>`` in the text would be read as markup."""
    text = text.replace("<", " ").replace(">", " ")
    if "pitch_pct" in settings:
        text = f'<pitch level="{int(settings["pitch_pct"])}">{text}</pitch>'
    if "speed_pct" in settings:
        text = f'<speed level="{int(settings["speed_pct"])}">{text}</speed>'
    return text


def _command(req: Request, wav: Path) -> tuple[list[str], str | None]:
    return ["-l", req.voice.name, "-w", str(wav), "--", _markup(req.text, dict(req.settings))], None


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    return program.render_each(PROGRAM, requests, _command)
