"""Offline text-to-speech voices: espeak-ng, flite, festival, piper, Kokoro, RHVoice, SVOX Pico and
MBROLA behind one interface.

Each engine module (``espeak``, ``flite``, ``festival``, ``piper``, ``kokoro``, ``rhvoice``, ``pico``,
``mbrola``) provides::

    probe() -> str | None          # None when usable, else why not (one line)
    backend() -> str               # what runs it, e.g. "libespeak-ng 1.52 from the espeakng-loader wheel"
    LICENSE: str                   # the voices' licence, for the dataset report
    voices() -> list[Voice]        # every voice it offers here
    random_settings(voice, rng) -> dict[str, float]   # rate/pitch/scale variation for one render
    synthesize(requests, seed=None) -> list[Rendered | str]   # per request: audio, or an error line

A missing engine is skipped and reported, never fatal (:func:`discover`). Engines return raw
audio at their own rate; trimming, resampling and caching belong to ``train.sources``.

A :class:`Voice` carries a *speaker*: voices that share one (flite ``kal`` and festival
``kal_diphone`` are the same recorded person) always land in the same dataset split, so
``val`` and ``test`` hear speakers that ``train`` never did.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

ENGINES = ("espeak", "flite", "festival", "piper", "kokoro", "rhvoice", "pico", "mbrola")


@dataclass(frozen=True)
class Voice:
    engine: str
    """Engine name, one of :data:`ENGINES`."""
    name: str
    """The engine's own name for the voice, e.g. ``en-us+f3``, ``slt``, ``kal_diphone``, ``joe``."""
    speaker: str
    """Identity used for splitting; voices sharing a speaker go to the same split."""

    @property
    def id(self) -> str:
        return f"{self.engine}:{self.name}"


@dataclass(frozen=True)
class Request:
    voice: Voice
    text: str
    settings: tuple[tuple[str, float], ...] = ()
    """Engine parameters as sorted (name, value) pairs (hashable, JSON-able)."""


@dataclass
class Rendered:
    audio: np.ndarray
    """float32 mono ``[samples]`` in [-1, 1] at ``sample_rate``."""
    sample_rate: int


def engine_module(engine: str):
    if engine not in ENGINES:
        raise ValueError(f"unknown TTS engine {engine!r} (known: {', '.join(ENGINES)})")
    return importlib.import_module(f"{__name__}.{engine}")


@dataclass
class Discovery:
    voices: list[Voice]
    backends: dict[str, str]
    """Engine -> what runs it, for the engines that work."""
    missing: dict[str, str]
    """Engine -> why it is skipped."""


def discover(engines: Sequence[str] = ENGINES) -> Discovery:
    """Probe the engines; every voice of every usable engine, and why the others are skipped."""
    found = Discovery([], {}, {})
    for engine in engines:
        mod = engine_module(engine)
        reason = mod.probe()
        if reason is None:
            voices = mod.voices()
            if not voices:
                reason = "no voices found"
            else:
                found.voices.extend(voices)
                found.backends[engine] = mod.backend()
        if reason is not None:
            log.warning("TTS engine %s skipped: %s", engine, reason)
            found.missing[engine] = reason
    return found


def synthesize(requests: Sequence[Request], seed: int | None = None) -> list[Rendered | str]:
    """Render requests (any mix of engines); per request the audio or a one-line error.

    ``seed`` makes engines with random synthesis (piper) reproducible for this batch; espeak-ng's
    breathy variants add a little unseeded noise, but never change an utterance's length."""
    out: list[Rendered | str | None] = [None] * len(requests)
    by_engine: dict[str, list[int]] = {}
    for i, req in enumerate(requests):
        by_engine.setdefault(req.voice.engine, []).append(i)
    for engine, idx in by_engine.items():
        results = engine_module(engine).synthesize([requests[i] for i in idx], seed=seed)
        for i, res in zip(idx, results):
            out[i] = res
    return out  # type: ignore[return-value]
