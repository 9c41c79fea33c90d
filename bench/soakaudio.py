"""The soak's audio: one long 16-bit mono WAV with keyword events at known times.

- **Tone** (the tone model, :mod:`bench.tonemodel`): slots of ``every_s`` seconds of
  low noise, most holding one 1 kHz burst at a random offset (the rest stay empty: stretches where
  nothing may fire). Written slot by slot, so hours of audio never sit in memory.
- **Keyword audio** for a real model: a WAV with a ``.json`` sidecar holding ``keyword_spans`` or
  ``spans`` (``[[start_s, end_s], ...]``: ``recordings/``' label files, ``make bench``'s test streams
  in ``<build>/bench/streams/``), repeated end to end until the soak is long enough.

Either way the result is the WAV and its events; the bench compares detections against them.
"""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.tonemodel import TONE_S, tone_clip
from device.fsutil import atomic_path


class AudioError(ValueError):
    """Unusable keyword audio (one line)."""


@dataclass(frozen=True)
class Event:
    start_s: float
    """Where the keyword starts in the soak audio (s)."""
    end_s: float
    """Where it ends (s): a detection is due shortly after this."""


def _pcm16(x: np.ndarray) -> bytes:
    return (np.clip(x, -1.0, 32767 / 32768) * 32768.0).round().astype("<i2").tobytes()


def write_tone_stream(
    path: Path, duration_s: float, every_s: float = 5.0, seed: int = 0, rate_hz: int = 16000, p_event: float = 0.85
) -> list[Event]:
    """``duration_s`` of tone-model audio -> its events. Each burst lies wholly inside its slot,
    at least 1 s after the slot starts and 1.5 s before it ends (slots of 4 s or more)."""
    if every_s < 4.0:
        raise AudioError(f"events must be at least 4 s apart (got {every_s:g} s)")
    rng = np.random.default_rng(seed)
    events = []
    n_slots = max(1, int(np.ceil(duration_s / every_s)))
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        for k in range(n_slots):
            slot_s = min(every_s, duration_s - k * every_s)
            at = []
            if slot_s >= every_s and rng.random() < p_event:
                at = [float(rng.uniform(1.0, every_s - TONE_S - 1.5))]
                events.append(Event(k * every_s + at[0], k * every_s + at[0] + TONE_S))
            w.writeframes(_pcm16(tone_clip(slot_s, at, rate_hz, seed=seed * 1_000_003 + k)))
    return events


def write_keyword_stream(path: Path, source: Path, duration_s: float, rate_hz: int = 16000) -> list[Event]:
    """``source`` (a 16-bit WAV at ``rate_hz`` with a ``.json`` sidecar of ``keyword_spans``)
    repeated to ``duration_s`` -> the events of every whole repetition."""
    from device.wavio import WavError, read_mono_float

    sidecar = source.with_suffix(".json")
    try:
        meta = json.loads(sidecar.read_text())
        spans = [(float(a), float(b)) for a, b in meta.get("keyword_spans", meta.get("spans"))]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise AudioError(f"{sidecar}: no usable keyword_spans ({exc})") from None
    try:
        audio, rate = read_mono_float(source)
    except (WavError, OSError) as exc:
        raise AudioError(f"{source}: {exc}") from None
    if rate != rate_hz:
        raise AudioError(f"{source}: {rate} Hz; the soak plays the model's {rate_hz} Hz")
    if not spans or not len(audio):
        raise AudioError(f"{source}: no keyword in it")
    length_s = len(audio) / rate_hz
    events = []
    total = int(round(duration_s * rate_hz))
    with atomic_path(path) as tmp, wave.open(str(tmp), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate_hz)
        done, rep = 0, 0
        while done < total:
            piece = audio[: total - done]
            w.writeframes(_pcm16(piece))
            offset = rep * length_s
            events += [Event(offset + a, offset + b) for a, b in spans if b <= (done + len(piece)) / rate_hz - offset]
            done += len(piece)
            rep += 1
    return events
