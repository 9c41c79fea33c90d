"""Detection-level metrics (train/metrics.py) on scripted score streams with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from device.decision import DecisionConfig
from train.metrics import ScoredStream, det_curve, evaluate, match, operating_index

FRAME_S = 0.02


def stream(seconds: float, bumps: list[tuple[float, float]], spans=(), base: float = 0.0) -> ScoredStream:
    """Probabilities at ``base`` with a 0.2 s bump of height h at each (time_s, h)."""
    p = np.full(int(seconds / FRAME_S), base)
    for t, h in bumps:
        i = int(t / FRAME_S)
        p[i : i + 10] = h
    return ScoredStream(p, FRAME_S, list(spans))


def test_hits_false_accepts_and_negative_time_are_counted_as_scripted():
    pos = stream(20.0, [(2.2, 0.9), (9.0, 0.9), (15.0, 0.3)], spans=[(1.5, 2.0), (14.5, 15.0)])
    neg = stream(3600.0, [(100.0, 0.8), (2000.0, 0.95)])
    out = evaluate([pos, neg], DecisionConfig(0.5), tolerance_s=1.0)
    # keyword 1 hit (2.22 s in [1.5, 3.0]); keyword 2 scored 0.3: missed; 9.0 s and both negatives: false accepts
    assert (out.keywords, out.hits, out.false_accepts) == (2, 1, 3)
    assert out.miss_rate == pytest.approx(0.5)
    negative_s = 20.0 - 2 * 1.5 + 3600.0
    assert out.fa_per_hour == pytest.approx(3 / (negative_s / 3600))


def test_match_counts_one_hit_per_keyword_and_merges_overlapping_windows():
    hits, fas, neg_s = match([1.0, 1.1, 5.0], [(0.5, 1.0), (0.9, 1.2)], 10.0, tolerance_s=0.5)
    assert (hits, fas) == (2, 1)
    assert neg_s == pytest.approx(10.0 - (1.7 - 0.5))


def test_set_apart_stretches_are_neither_false_accepts_nor_negative_time():
    # a detection on a sound-alike (ignored 4.0-5.5 s) and one on ordinary audio (8.0 s)
    hits, fas, neg_s = match([4.5, 8.0], [], 10.0, tolerance_s=1.0, ignore=[(4.0, 5.5)])
    assert (hits, fas) == (0, 1) and neg_s == pytest.approx(8.5)
    st = stream(10.0, [(4.2, 0.9), (8.0, 0.9)])
    st.ignore_spans = [(4.0, 5.5)]
    out = evaluate([st], DecisionConfig(0.5))
    assert out.false_accepts == 1 and out.negative_hours == pytest.approx(8.5 / 3600)


def test_sweep_is_monotone_above_the_degenerate_region_and_the_operating_point_meets_the_target():
    rng = np.random.default_rng(0)
    pos = stream(
        400.0,
        [(4.0 * k + 1.5, rng.uniform(0.3, 1.0)) for k in range(100)],
        spans=[(4.0 * k + 1.0, 4.0 * k + 1.4) for k in range(100)],
        base=0.02,
    )
    neg = stream(7200.0, [(t, rng.beta(0.5, 3.0)) for t in np.arange(3.0, 7200.0, 11.0)], base=0.02)
    curve = det_curve([pos, neg])
    i0 = int(np.argmax(curve.fa_per_hour))
    assert np.all(np.diff(curve.fa_per_hour[i0:]) <= 0)
    assert np.all(np.diff(curve.miss_rate[i0:]) >= 0)
    for target in (0.5, 5.0, 50.0):
        thr, miss = curve.at_fa(target)
        out = evaluate([pos, neg], DecisionConfig(thr))
        assert out.fa_per_hour <= target and out.miss_rate == pytest.approx(miss)


def test_a_threshold_below_the_score_floor_is_never_the_operating_point():
    """Scores that never fall under a low threshold never re-arm the detector: one detection per
    stream, hardly any false accepts, nearly everything missed. That point must not be chosen."""
    pos = stream(
        100.0,
        [(4.0 * k + 1.5, 0.9) for k in range(25)],
        spans=[(4.0 * k + 1.0, 4.0 * k + 1.4) for k in range(25)],
        base=0.1,
    )
    neg = stream(3600.0, [(t, 0.6) for t in range(10, 3600, 60)], base=0.1)
    curve = det_curve([pos, neg], thresholds=np.array([0.05, 0.3, 0.7, 0.95]))
    assert curve.fa_per_hour[0] < 2  # the degenerate point does meet a lax target...
    thr, miss = curve.at_fa(2.0)
    assert thr == pytest.approx(0.7) and miss == 0.0  # ...but the operating point is the sane one


def test_no_threshold_meets_an_impossible_target():
    neg = stream(600.0, [(t, 0.99999) for t in range(5, 600, 10)])  # above the top of the grid
    assert operating_index(det_curve([neg]).fa_per_hour, 0.1) is None
    assert det_curve([neg]).at_fa(0.1) == (1.0, 1.0)
