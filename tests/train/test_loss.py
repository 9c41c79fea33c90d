"""The frame loss: weighted BCE, and the max-pooled variant over each keyword's label window."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from train.loss import frame_loss, positive_runs


def _batch():
    """Two clips of 8 frames: the first has keyword windows at frames 2-3 and 6-7, the second
    one at 0-2 and a padded tail (frames 5-7 masked)."""
    labels = torch.tensor([[0, 0, 1, 1, 0, 0, 1, 1], [1, 1, 1, 0, 0, 0, 0, 0]], dtype=torch.float32)
    mask = torch.tensor([[1] * 8, [1] * 5 + [0] * 3], dtype=torch.float32)
    logits = torch.tensor([[-3.0, -1.0, 0.5, 2.0, -2.0, 1.0, -0.5, 0.2], [1.5, 3.0, -1.0, -4.0, 0.0, 9.0, 9.0, 9.0]])
    return logits, labels, mask


def test_runs_are_numbered_across_the_batch():
    _, labels, mask = _batch()
    pos, run = positive_runs(labels, mask)
    assert run[pos].tolist() == [0, 0, 1, 1, 2, 2, 2]


def test_pooled_loss_counts_each_window_through_its_highest_logit():
    logits, labels, mask = _batch()
    neg = [-3.0, -1.0, -2.0, 1.0, -4.0, 0.0]  # unmasked frames outside every window
    peaks, frames = [2.0, 0.2, 3.0], [2, 2, 3]
    want = sum(F.softplus(torch.tensor(x)) for x in neg) + sum(
        4.0 * n * F.softplus(torch.tensor(-p)) for p, n in zip(peaks, frames)
    )
    got = frame_loss(logits, labels, mask, pos_weight=4.0, pool_positives=True)
    assert float(got) == pytest.approx(float(want) / 13)


def test_only_the_peak_of_a_window_and_the_negatives_get_a_gradient():
    logits, labels, mask = _batch()
    logits.requires_grad_(True)
    frame_loss(logits, labels, mask, pos_weight=4.0, pool_positives=True).backward()
    grad = logits.grad
    assert grad is not None
    # peaks (frames 3, 7 of clip 0; frame 1 of clip 1) are pushed up, the rest of their windows not at all
    assert grad[0, 3] < 0 and grad[0, 7] < 0 and grad[1, 1] < 0
    assert grad[0, 2] == 0 and grad[0, 6] == 0 and grad[1, 0] == 0 and grad[1, 2] == 0
    assert torch.all(grad[0, [0, 1, 4, 5]] > 0) and torch.all(grad[1, [3, 4]] > 0)
    assert torch.all(grad[1, 5:] == 0)  # padding


def test_without_positives_both_losses_agree():
    logits = torch.randn(3, 10)
    labels, mask = torch.zeros(3, 10), torch.ones(3, 10)
    a = frame_loss(logits, labels, mask, pos_weight=4.0, focal_gamma=2.0)
    b = frame_loss(logits, labels, mask, pos_weight=4.0, focal_gamma=2.0, pool_positives=True)
    assert float(a) == pytest.approx(float(b), rel=1e-6)
