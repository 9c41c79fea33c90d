"""Frame loss for rare positives: binary cross-entropy with a positive weight, optionally focal.

Positive output frames are a few per cent of all frames (one label window per keyword), so
plain BCE is content to predict "no" nearly everywhere. ``pos_weight`` scales the loss of
positive frames; the focal factor ``(1 - p_t) ** gamma`` further down-weights the easy frames
(the long stretches of obvious silence) so the gradient comes from the hard ones.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F


def frame_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, pos_weight: float = 1.0, focal_gamma: float = 0.0
) -> torch.Tensor:
    """Mean loss over the frames where ``mask`` is 1.

    ``logits``, ``labels``, ``mask``: float ``[B, T]`` (labels in [0, 1]).
    """
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    weight = 1.0 + (pos_weight - 1.0) * labels
    if focal_gamma > 0:
        p = torch.sigmoid(logits)
        p_true = p * labels + (1 - p) * (1 - labels)
        weight = weight * (1 - p_true).pow(focal_gamma)
    return (bce * weight * mask).sum() / mask.sum().clamp(min=1.0)
