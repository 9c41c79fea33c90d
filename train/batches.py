"""Training batches: which clips each step sees, and the SpecAugment masks laid over them.

Both are pure functions of ``(seed, step, rank)``, with no state carried from one step to the
next. So a run resumed at step ``s`` sees exactly the batches an uninterrupted run saw from
``s`` on, and each of ``world`` distributed replicas sees its own share of every global batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def step_seed(seed: int, step: int, rank: int = 0) -> int:
    """A well-mixed 63-bit seed for one (step, replica)."""
    return int(np.random.SeedSequence([seed, step, rank]).generate_state(2, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class Schedule:
    """Epoch-wise shuffling of ``n_clips`` into global batches of ``batch_size * world`` clips."""

    n_clips: int
    batch_size: int
    """Clips per replica per step."""
    world: int = 1
    seed: int = 0

    @property
    def steps_per_epoch(self) -> int:
        return max(1, self.n_clips // (self.batch_size * self.world))

    def indices(self, step: int, rank: int = 0) -> np.ndarray:
        """Clip indices replica ``rank`` trains on at ``step`` (int64 ``[batch_size]``).

        Each epoch is a fresh permutation; an epoch's last partial global batch is dropped.
        With fewer clips than one global batch, clips repeat (tiny datasets in tests).
        """
        epoch, k = divmod(step, self.steps_per_epoch)
        perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_clips)
        need = self.steps_per_epoch * self.batch_size * self.world
        if len(perm) < need:
            perm = np.resize(perm, need)
        start = (k * self.world + rank) * self.batch_size
        return perm[start:start + self.batch_size].astype(np.int64)

    def epoch(self, step: int) -> int:
        return step // self.steps_per_epoch


def pool_labels(labels: np.ndarray, stride: int) -> np.ndarray:
    """Per-feature-frame labels ``[..., frames]`` -> per-output-frame ``[..., frames // stride]``:
    max over each group of ``stride`` frames (an output frame is positive when any of its
    feature frames is); a trailing partial group is dropped."""
    labels = np.asarray(labels)
    n = labels.shape[-1] // stride
    return labels[..., :n * stride].reshape(*labels.shape[:-1], n, stride).max(axis=-1)


def collate(feats: list[np.ndarray], labels: list[np.ndarray], stride: int
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips of possibly different lengths -> ``(feats [B, T, F], labels [B, T // stride],
    mask [B, T // stride])``, zero-padded at the end; ``T`` a multiple of ``stride``.

    Labels are pooled from feature frames to output frames by max (an output frame is
    positive when any of its ``stride`` feature frames is).
    """
    longest = max(len(f) for f in feats)
    longest += (-longest) % stride
    n_out = longest // stride
    x = np.zeros((len(feats), longest, feats[0].shape[1]), np.float32)
    y = np.zeros((len(feats), n_out), np.float32)
    m = np.zeros((len(feats), n_out), np.float32)
    for i, (f, lab) in enumerate(zip(feats, labels)):
        x[i, :len(f)] = f
        frames = min(len(f), len(lab)) // stride
        y[i, :frames] = pool_labels(np.asarray(lab[:frames * stride]), stride)
        m[i, :frames] = 1.0
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m)


@dataclass(frozen=True)
class SpecAugment:
    time_masks: int = 2
    """Time masks per clip."""
    time_mask_frames: int = 10
    """Widest time mask (feature frames); each width is drawn from 0..this."""
    freq_masks: int = 2
    """Frequency masks per clip."""
    freq_mask_bins: int = 6
    """Widest frequency mask (mel bins)."""

    def __call__(self, feats: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``feats [B, T, F]`` -> a copy with masked stretches set to each clip's mean log-mel
        (a neutral value for the input normalisation that follows)."""
        if not (self.time_masks and self.time_mask_frames) and not (self.freq_masks and self.freq_mask_bins):
            return feats
        b, t, f = feats.shape
        out = feats.clone()
        fill = feats.mean(dim=(1, 2), keepdim=True).expand_as(feats)
        keep = torch.ones(b, t, f, dtype=torch.bool)
        for count, width, size, axis in ((self.time_masks, self.time_mask_frames, t, 1),
                                         (self.freq_masks, self.freq_mask_bins, f, 2)):
            for _ in range(count if width else 0):
                w = torch.randint(0, width + 1, (b,), generator=gen)
                start = (torch.rand(b, generator=gen) * (size - w + 1).clamp(min=1)).long()
                pos = torch.arange(size)[None, :]
                hit = (pos >= start[:, None]) & (pos < (start + w)[:, None])  # [B, size]
                keep &= ~(hit[:, :, None] if axis == 1 else hit[:, None, :])
        out[~keep] = fill[~keep]
        return out
