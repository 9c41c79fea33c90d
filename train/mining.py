"""Hard-negative mining: find the training clips the model currently false-fires on, and show
them more often.

At each validation a deterministic random pool of training clips is scored; a clip's
*hardness* is its highest probability outside every keyword (more than ``guard_s`` before a
keyword starts or after its label window ends), i.e. how close it came to a false accept. Clips
whose hardness exceeds ``min_prob`` form the hard set; each later step replaces
``fraction`` of its batch with clips drawn from that set in proportion to hardness. The set
is part of the checkpoint, so a resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from device.params import AudioParams
from train.validate import predict


@dataclass
class HardSet:
    indices: np.ndarray
    """Training clip indices, int64 ``[n]``."""
    weights: np.ndarray
    """Their hardness (max off-keyword probability), float64 ``[n]``."""

    @classmethod
    def empty(cls) -> HardSet:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.float64))

    def __len__(self) -> int:
        return len(self.indices)

    def draw(self, n: int, gen: np.random.Generator) -> np.ndarray:
        """``n`` clip indices drawn with replacement, in proportion to hardness."""
        return gen.choice(self.indices, size=n, p=self.weights / self.weights.sum())

    def to_dict(self) -> dict:
        return {"indices": self.indices.tolist(), "weights": self.weights.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> HardSet:
        return cls(np.asarray(data["indices"], np.int64), np.asarray(data["weights"], np.float64))


def off_keyword_mask(meta: dict, n_out: int, params: AudioParams, guard_s: float) -> np.ndarray:
    """bool ``[n_out]``: output frames well away from every keyword in the clip."""
    t_end = (np.arange(n_out) + 1) * params.output_hop_s  # output frame i ends here
    mask = np.ones(n_out, bool)
    for kw in meta.get("keywords", []):
        lo = float(kw["start_s"]) - guard_s
        hi = float(kw["end_s"]) + params.label_window_ms / 1000 + guard_s
        mask &= ~((t_end >= lo) & (t_end <= hi))
    return mask


def mine(
    model, clips, pool: np.ndarray, params: AudioParams, device: torch.device, min_prob: float, guard_s: float = 0.3
) -> HardSet:
    """Score the clips in ``pool`` and keep those with hardness >= ``min_prob``."""
    logits = predict(model, [clips.features(int(i)) for i in pool], device)
    hard = []
    for i, lg in zip(pool, logits):
        mask = off_keyword_mask(clips.meta(int(i)), len(lg), params, guard_s)
        if mask.any():
            p = float(1 / (1 + np.exp(-lg[mask].astype(np.float64).max())))
            if p >= min_prob:
                hard.append((int(i), p))
    if not hard:
        return HardSet.empty()
    idx, w = zip(*hard)
    return HardSet(np.asarray(idx, np.int64), np.asarray(w, np.float64))


def pool_for(round_: int, n_clips: int, size: int, seed: int) -> np.ndarray:
    """The training clips scored in mining round ``round_`` (deterministic)."""
    rng = np.random.default_rng([seed, 7919, round_])
    return np.sort(rng.choice(n_clips, size=min(size, n_clips), replace=False))
