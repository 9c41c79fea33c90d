"""A small in-memory dataset with the ``train.dataset`` ClipSet API, for tests of the training
mechanics that need no speech: the "keyword" is a 1 kHz tone burst (bench/tonemodel.py), so a
tiny model learns it in a few dozen steps."""

from __future__ import annotations

import numpy as np

from bench.tonemodel import TONE_S, tone_clip
from device.params import AudioParams
from train.frontend import features


class ToneClips:
    """``n`` clips of ``clip_s`` seconds; every other clip holds one tone burst (the keyword)."""

    def __init__(
        self, n: int, clip_s: float = 3.0, seed: int = 0, params: AudioParams = AudioParams(), keyword: str = "tone"
    ):
        self.params, self.keyword = params, keyword
        rng = np.random.default_rng(seed)
        self._feats, self._labels, self._meta = [], [], []
        for k in range(n):
            starts = [float(rng.uniform(0.2, clip_s - TONE_S - 0.6))] if k % 2 == 0 else []
            audio = tone_clip(clip_s, starts, params.sample_rate, seed=seed * 10_000 + k)
            feats = features(audio, params)
            labels = np.zeros(len(feats), np.float32)
            kws = []
            for s in starts:
                end_s = s + TONE_S
                first = int(np.ceil(end_s * params.sample_rate / params.output_hop_samples)) - 1
                labels[first : first + params.label_window_frames] = 1.0
                kws.append({"start_s": s, "end_s": end_s, "voice": "tone", "source": "test"})
            self._feats.append(feats)
            self._labels.append(labels)
            self._meta.append({"keywords": kws})

    def __len__(self) -> int:
        return len(self._feats)

    def features(self, i: int) -> np.ndarray:
        return self._feats[i]

    def labels(self, i: int) -> np.ndarray:
        return self._labels[i]

    def meta(self, i: int) -> dict:
        return self._meta[i]
