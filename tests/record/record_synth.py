"""Synthetic "speech in noise" for the trimming tests: voiced syllables with known edges."""

from __future__ import annotations

import numpy as np


def syllable(duration_s: float, f0_hz: float, sample_rate: int, ramp_s: float = 0.02) -> np.ndarray:
    """A voiced syllable: the harmonics of ``f0_hz`` up to 3.5 kHz, falling gently like a vowel's,
    under a raised-cosine envelope; RMS 1."""
    t = np.arange(round(duration_s * sample_rate)) / sample_rate
    tone = sum(np.sin(2 * np.pi * f0_hz * k * t) / np.sqrt(k) for k in range(1, int(3500 // f0_hz) + 1))
    envelope = np.ones_like(t)
    ramp = min(round(ramp_s * sample_rate), len(t) // 2)
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.pi * np.arange(ramp) / ramp)
        envelope[:ramp], envelope[len(t) - ramp :] = edge, edge[::-1]
    x = tone * envelope
    return x / np.sqrt(np.mean(x * x))


def speech_in_noise(
    rng: np.random.Generator,
    sample_rate: int,
    lead_s: float,
    syllables: list[tuple[float, float]],
    tail_s: float,
    speech_dbfs: float,
    snr_db: float,
) -> tuple[np.ndarray, float, float]:
    """Noise, then syllables ``(duration_s, gap_after_s)``, then noise; float32 ``[n]``.

    Every syllable has RMS ``speech_dbfs`` and sits ``snr_db`` above the white noise.
    Returns the audio and the true start and end of the speech (s).
    """
    parts = [np.zeros(round(lead_s * sample_rate))]
    for i, (dur_s, gap_s) in enumerate(syllables):
        parts.append(syllable(dur_s, 110.0 + 20 * i, sample_rate) * 10 ** (speech_dbfs / 20))
        if i < len(syllables) - 1:
            parts.append(np.zeros(round(gap_s * sample_rate)))
    speech_end = sum(len(p) for p in parts) / sample_rate
    parts.append(np.zeros(round(tail_s * sample_rate)))
    clean = np.concatenate(parts)
    noise = rng.standard_normal(len(clean)) * 10 ** ((speech_dbfs - snr_db) / 20)
    return (clean + noise).astype(np.float32), lead_s, speech_end
