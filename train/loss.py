"""Frame loss for rare positives: binary cross-entropy with a positive weight, optionally focal,
optionally max-pooled over each keyword's label window.

Positive output frames are a few per cent of all frames (one label window per keyword), so
plain BCE is content to predict "no" nearly everywhere. ``pos_weight`` scales the loss of
positive frames; the focal factor ``(1 - p_t) ** gamma`` further down-weights the easy frames
(the long stretches of obvious silence) so the gradient comes from the hard ones.

With ``pool_positives`` each keyword's label window (a run of positive frames) counts through
its highest logit only, weighted as the whole window would be: the head must be sure at *one*
frame after the keyword, of its own choosing, instead of at every frame of the window (the
max-pooling loss of Sun et al., "Max-pooling loss training of long short-term memory networks
for small-footprint keyword spotting", 2016). Every other frame is a negative as before.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def frame_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    pos_weight: float = 1.0,
    focal_gamma: float = 0.0,
    pool_positives: bool = False,
) -> torch.Tensor:
    """Mean loss per unmasked frame.

    ``logits``, ``labels``, ``mask``: float ``[B, T]`` (labels in [0, 1]; with ``pool_positives``
    a frame is positive when its label is above 0.5).
    """
    if pool_positives:
        return _pooled_loss(logits, labels, mask, pos_weight, focal_gamma)
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    weight = 1.0 + (pos_weight - 1.0) * labels
    if focal_gamma > 0:
        p = torch.sigmoid(logits)
        p_true = p * labels + (1 - p) * (1 - labels)
        weight = weight * (1 - p_true).pow(focal_gamma)
    return (bce * weight * mask).sum() / mask.sum().clamp(min=1.0)


def positive_runs(labels: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (bool ``[B, T]`` positive frames, int ``[B, T]`` the index of the run of consecutive
    positive frames each belongs to, counted over the whole batch; meaningless elsewhere)."""
    pos = (labels > 0.5) & (mask > 0)
    before = F.pad(pos[:, :-1], (1, 0), value=False)
    starts = pos & ~before
    return pos, torch.cumsum(starts.flatten().long(), 0).view_as(labels) - 1


def _pooled_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, pos_weight: float, focal_gamma: float
) -> torch.Tensor:
    pos, run = positive_runs(labels, mask)
    neg = (mask > 0) & ~pos
    neg_loss = F.softplus(logits[neg])  # BCE against 0
    if focal_gamma > 0:
        neg_loss = neg_loss * torch.sigmoid(logits[neg]).pow(focal_gamma)
    total = neg_loss.sum()
    if bool(pos.any()):
        ids = run[pos]
        n_runs = int(ids.max()) + 1
        peak = torch.full((n_runs,), float("-inf"), dtype=logits.dtype, device=logits.device)
        peak = peak.scatter_reduce(0, ids, logits[pos], reduce="amax", include_self=False)
        frames = torch.bincount(ids, minlength=n_runs).to(logits.dtype)
        pos_loss = F.softplus(-peak)  # BCE against 1
        if focal_gamma > 0:
            pos_loss = pos_loss * (1 - torch.sigmoid(peak)).pow(focal_gamma)
        total = total + (pos_loss * frames * pos_weight).sum()
    return total / mask.sum().clamp(min=1.0)
