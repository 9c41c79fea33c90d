"""The *tone model*: a tiny real model, trained in seconds, exported to real ONNX, run by onnxruntime.

It detects a 1 kHz tone burst in noise. It is not a wake word, but it exercises the whole chain
(front end, head, streaming export, metadata, device path) with a detector whose right answer is
known, so the tests, ``make soak QUICK=1`` (:mod:`bench.soakaudio`, :mod:`bench.soakrun`) and
``make e2e-pi`` (:mod:`deploy.testbed.e2e_pi`) can assert "positive -> detection, negative -> none"
without a long training run. Building it needs the ``train`` extra (torch); :func:`tone_clip` needs
only numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TONE_HZ = 1000.0
TONE_S = 0.4


def tone_clip(
    seconds: float, tone_at_s: list[float], sample_rate: int = 16000, seed: int = 0, noise: float = 0.01
) -> np.ndarray:
    """Float32 mono clip of low noise with a 1 kHz burst starting at each time in ``tone_at_s``."""
    rng = np.random.default_rng(seed)
    clip = (rng.standard_normal(int(seconds * sample_rate)) * noise).astype(np.float32)
    n = int(TONE_S * sample_rate)
    t = np.arange(n) / sample_rate
    burst = (0.3 * np.sin(2 * np.pi * TONE_HZ * t) * np.hanning(n)).astype(np.float32)
    for start_s in tone_at_s:
        i = int(start_s * sample_rate)
        clip[i : i + n] += burst[: len(clip) - i]
    return clip


def build_tone_model(path: str | Path, seed: int = 0, steps: int = 120) -> Path:
    """Train a tiny head to fire after a tone burst and export it (with the real front end) to ``path``."""
    from device.modelmeta import ModelMeta
    from export.onnx_export import write_model
    from export.streaming import StreamingDetector
    from train.frontend import describe

    model, params, n_clips = train_tone_head(seed, steps)
    meta = ModelMeta(
        keyword="tone",
        params=params,
        threshold=0.5,
        model_version="tone-test",
        training={"kind": "test tone model", "clips": n_clips, "seed": seed},
        frontend=describe(),
    )
    return write_model(StreamingDetector(model, params), meta, path)


def train_tone_head(seed: int = 0, steps: int = 120):
    """The tone model's head, trained (eval mode) on the real front end's embeddings
    -> ``(model, AudioParams, clips used)``."""
    import torch

    from device.params import AudioParams
    from train import frontend
    from train.model import Head, ModelConfig

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = AudioParams()
    clip_s, n_clips = 3.0, 48
    clips, labels = [], []
    n_out = params.frames_for(int(clip_s * params.sample_rate))
    for k in range(n_clips):
        y = np.zeros(n_out, np.float32)
        starts = []
        if k % 2 == 0:
            start = float(rng.uniform(0.1, clip_s - TONE_S - 0.5))
            starts.append(start)
            end_frame = int((start + TONE_S) * params.sample_rate) // params.output_hop_samples
            y[end_frame : end_frame + params.label_window_frames] = 1.0
        clips.append(tone_clip(clip_s, starts, seed=seed * 1000 + k))
        labels.append(y)
    feats = torch.from_numpy(frontend.embed(clips, frontend.shared(params)))
    target = torch.from_numpy(np.stack(labels))
    model = Head(ModelConfig(hidden=16, layers=1, dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(4.0))
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(feats), target)
        loss.backward()
        opt.step()
    return model.eval(), params, n_clips
