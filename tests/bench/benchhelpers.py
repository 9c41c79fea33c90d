"""Helpers for the benchmark tests: tone-model test audio laid out like the real test sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.testsets import SetSpec, TestAudio, materialize
from bench.tonemodel import TONE_HZ, TONE_S
from device.params import AudioParams

SOURCE = "tone"


def tone_clips(n: int, seed: int, params: AudioParams, other_hz: float | None = None):
    """``n`` short clips, each a 1 kHz burst (the tone model's keyword) with its span, or a burst
    at ``other_hz`` (a negative the model must ignore)."""
    from train.streams import Clip

    rng = np.random.default_rng(seed)
    sr = params.sample_rate
    clips = []
    for k in range(n):
        lead_s = float(rng.uniform(0.1, 0.3))
        t = np.arange(int(TONE_S * sr)) / sr
        hz = TONE_HZ if other_hz is None else other_hz
        burst = (0.3 * np.sin(2 * np.pi * hz * t) * np.hanning(len(t))).astype(np.float32)
        audio = np.concatenate([np.zeros(int(lead_s * sr), np.float32), burst, np.zeros(int(0.1 * sr), np.float32)])
        audio += (rng.standard_normal(len(audio)) * 0.01).astype(np.float32)
        span = (lead_s, lead_s + TONE_S) if other_hz is None else None
        clips.append(Clip(audio, span, f"{'kw' if span else 'neg'}{k}"))
    return clips


def tone_sets(
    out_dir: Path,
    params: AudioParams,
    positives: int = 6,
    negatives: int = 40,
    seed: int = 0,
    snr_db: float | None = 10.0,
) -> list[TestAudio]:
    """Positive and negative WAVs (clean and, with ``snr_db``, noisy) through :func:`materialize`."""
    from train.streams import StreamConfig, negative_streams, positive_streams

    cfg = StreamConfig(keywords_per_stream=3, negative_stream_s=20.0, seed=seed)
    pos = tone_clips(positives, seed, params)
    neg = tone_clips(negatives, seed + 1, params, other_hz=3000.0)
    noise = [np.random.default_rng(seed + 2).standard_normal(params.sample_rate * 5).astype(np.float32)]
    conditions = [(None, "clean")] + ([(snr_db, f"{snr_db:g} dB")] if snr_db is not None else [])
    specs = {}
    for _snr, cond in conditions:
        specs[f"{cond}/pos"] = SetSpec(SOURCE, cond, True)
        specs[f"{cond}/neg"] = SetSpec(SOURCE, cond, False)

    def streams():
        for snr, cond in conditions:
            for s in positive_streams(pos, params, cfg, noise if snr is not None else (), snr):
                yield f"{cond}/pos", s, 0
            for s in negative_streams(neg, params, cfg, noise if snr is not None else (), snr):
                yield f"{cond}/neg", s, 0

    return materialize(out_dir, f"tone{seed}", specs, streams, params.sample_rate)
