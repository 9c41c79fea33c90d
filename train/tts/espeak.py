"""espeak-ng: every English accent times every voice variant, with varied rate and pitch.

Two ways to run it, the first that works wins:

1. ``libespeak-ng`` from the ``espeakng-loader`` wheel (PyPI, so a workstation needs no sudo),
   driven in-process through its C API with ctypes (about 1 ms per word);
2. the Debian ``espeak-ng`` program (one process per render).

A voice is ``<accent>+<variant>`` (e.g. ``en-us+f3``); its *speaker* is the variant, which
sets the timbre (formants, pitch range, breathiness), so holding a variant out of training
holds out every accent spoken with it.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from train.tts import Rendered, Request, Voice

log = logging.getLogger(__name__)

ENGINE = "espeak"
LICENSE = "espeak-ng and its voices: GPL-3.0-or-later (the rendered audio is not covered by it)"
"""What may be done with the voices (the dataset report lists it); all allow commercial use."""
LANGUAGE_PREFIX = "en"
SKIP_LANGUAGES = {"en-shaw"}  # Shavian script, not the Latin alphabet our texts use
DEFAULT_VARIANT = ""  # the accent's own voice, without a variant file

# espeak_PARAMETER values from speak_lib.h
_RATE, _PITCH, _RANGE = 1, 3, 4
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1


# -- backends -------------------------------------------------------------------------
class _Library:
    """libespeak-ng from the espeakng-loader wheel, initialised once per process."""

    _CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def __init__(self) -> None:
        import espeakng_loader

        self.data_dir = Path(espeakng_loader.get_data_path())
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.sample_rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self.data_dir).encode(), _INITIALIZE_DONT_EXIT
        )
        if self.sample_rate <= 0:
            raise OSError(f"espeak_Initialize failed ({self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        self._callback = self._CALLBACK(self._collect)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lib.espeak_Info.restype = ctypes.c_char_p
        self.version = self.lib.espeak_Info(None).decode()

    def _collect(self, wav, n, _events) -> int:
        if n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0  # 0 = continue synthesis

    def render(self, voice: str, text: str, settings: dict[str, float]) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for param, key in ((_RATE, "rate_wpm"), (_PITCH, "pitch"), (_RANGE, "pitch_range")):
            if key in settings:
                self.lib.espeak_SetParameter(param, int(round(settings[key])), 0)
        data = text.encode() + b"\0"
        self._chunks = []
        err = self.lib.espeak_Synth(data, ctypes.c_size_t(len(data)), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        if err != 0:
            raise ValueError(f"espeak_Synth failed ({err})")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return pcm.astype(np.float32) / 32768.0


class _Program:
    """The Debian ``espeak-ng`` program."""

    def __init__(self) -> None:
        exe = shutil.which("espeak-ng")
        if exe is None:
            raise OSError("neither the espeakng-loader wheel nor the espeak-ng program is installed")
        self.exe = exe
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True).stdout
        match = re.search(r"Data at:\s*(\S+)", out)
        if not match:
            raise OSError(f"cannot find espeak-ng's data directory in {out.strip()!r}")
        self.data_dir = Path(match.group(1))
        self.version = out.split("Data at")[0].strip()

    def render(self, voice: str, text: str, settings: dict[str, float]) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
            wav = Path(tmp) / "out.wav"
            cmd = [self.exe, "-v", voice, "-w", str(wav)]
            if "rate_wpm" in settings:
                cmd += ["-s", str(int(round(settings["rate_wpm"])))]
            if "pitch" in settings:
                cmd += ["-p", str(int(round(settings["pitch"])))]
            proc = subprocess.run(cmd + ["--", text], capture_output=True, text=True, timeout=60)
            if proc.returncode != 0 or not wav.exists():
                raise ValueError(f"espeak-ng failed: {proc.stderr.strip()[:200]}")
            audio, self.sample_rate = sf.read(str(wav), dtype="float32")
        return audio


@functools.lru_cache(maxsize=1)
def _backend_for_pid(pid: int) -> _Library | _Program:
    # Keyed by pid: a forked child must not reuse its parent's C library state.
    try:
        return _Library()
    except (ImportError, OSError) as exc:
        log.info("espeakng-loader unavailable (%s); trying the espeak-ng program", exc)
        return _Program()


def _backend() -> _Library | _Program:
    return _backend_for_pid(os.getpid())


# -- engine interface -----------------------------------------------------------------
def probe() -> str | None:
    try:
        _backend()
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    return None


def backend() -> str:
    b = _backend()
    where = "espeakng-loader wheel" if isinstance(b, _Library) else b.exe
    return f"espeak-ng {b.version} ({where})"


def accents(data_dir: Path) -> list[str]:
    """Voice names of the English accents in an espeak-ng data directory."""
    # The voice file's name is what espeak_SetVoiceByName and ``espeak-ng -v`` accept
    # (``en`` is British English; its language line says en-gb, which is not a voice name).
    return sorted(
        {
            p.name.lower()
            for p in (data_dir / "lang").rglob(f"{LANGUAGE_PREFIX}*")
            if p.is_file() and p.name.lower() not in SKIP_LANGUAGES
        }
    )


def variants(data_dir: Path) -> list[str]:
    """Voice variant names (files in ``voices/!v``), plus the accent's own default voice."""
    vdir = data_dir / "voices" / "!v"
    names = sorted(p.name for p in vdir.iterdir() if p.is_file()) if vdir.is_dir() else []
    return [DEFAULT_VARIANT] + names


def voices() -> list[Voice]:
    data_dir = _backend().data_dir
    out = []
    for variant in variants(data_dir):
        speaker = f"espeak+{variant or 'default'}"
        for accent in accents(data_dir):
            name = f"{accent}+{variant}" if variant else accent
            out.append(Voice(ENGINE, name, speaker))
    return out


def random_settings(voice: Voice, rng: np.random.Generator) -> dict[str, float]:
    """Speaking rate 120-220 words/min (default 175), pitch 20-80 and pitch range 20-90 (of 0-99)."""
    return {
        "rate_wpm": float(rng.integers(120, 221)),
        "pitch": float(rng.integers(20, 81)),
        "pitch_range": float(rng.integers(20, 91)),
    }


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    b = _backend()
    out: list[Rendered | str] = []
    for req in requests:
        try:
            audio = b.render(req.voice.name, req.text, dict(req.settings))
            out.append(Rendered(audio, b.sample_rate))
        except (ValueError, OSError, subprocess.SubprocessError) as exc:
            out.append(f"{req.voice.id}: {exc}")
    return out
