"""Training batches: which clips each step sees, and the masks and noise laid over their embeddings.

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
        return perm[start : start + self.batch_size].astype(np.int64)

    def epoch(self, step: int) -> int:
        return step // self.steps_per_epoch


def collate(feats: list[np.ndarray], labels: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Clips of possibly different lengths -> ``(feats [B, T, F], labels [B, T], mask [B, T])``,
    zero-padded at the end. Features and labels are both per output frame (80 ms)."""
    longest = max(len(f) for f in feats)
    x = np.zeros((len(feats), longest, feats[0].shape[1]), np.float32)
    y = np.zeros((len(feats), longest), np.float32)
    m = np.zeros((len(feats), longest), np.float32)
    for i, (f, lab) in enumerate(zip(feats, labels)):
        x[i, : len(f)] = f
        frames = min(len(f), len(lab))
        y[i, :frames] = lab[:frames]
        m[i, :frames] = 1.0
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(m)


@dataclass(frozen=True)
class FeatureAugment:
    """SpecAugment-style masks over the stored embeddings, plus Gaussian noise (the audio itself
    was augmented when the clips were mixed; this only varies what each stored clip teaches)."""

    time_masks: int = 0
    """Time masks per clip."""
    time_mask_frames: int = 2
    """Widest time mask (80 ms frames); each width is drawn from 0..this."""
    freq_masks: int = 0
    """Masks over embedding dimensions per clip."""
    freq_mask_bins: int = 8
    """Widest such mask (dimensions)."""
    noise: float = 0.0
    """Gaussian noise added to every number, as a fraction of the batch's standard deviation."""

    def __call__(self, feats: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``feats [B, T, F]`` -> a copy with masked stretches set to each clip's mean
        (a neutral value for the normalisation that follows) and noise added."""
        if self.noise > 0:
            feats = feats + torch.randn(feats.shape, generator=gen) * (self.noise * feats.std())
        if not (self.time_masks and self.time_mask_frames) and not (self.freq_masks and self.freq_mask_bins):
            return feats
        b, t, f = feats.shape
        out = feats.clone()
        fill = feats.mean(dim=(1, 2), keepdim=True).expand_as(feats)
        keep = torch.ones(b, t, f, dtype=torch.bool)
        for count, width, size, axis in (
            (self.time_masks, self.time_mask_frames, t, 1),
            (self.freq_masks, self.freq_mask_bins, f, 2),
        ):
            for _ in range(count if width else 0):
                w = torch.randint(0, width + 1, (b,), generator=gen)
                start = (torch.rand(b, generator=gen) * (size - w + 1).clamp(min=1)).long()
                pos = torch.arange(size)[None, :]
                hit = (pos >= start[:, None]) & (pos < (start + w)[:, None])  # [B, size]
                keep &= ~(hit[:, :, None] if axis == 1 else hit[:, None, :])
        out[~keep] = fill[~keep]
        return out
