"""Threshold calibration on scripted score streams whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from export.calibrate import CalibrationConfig, calibrate, fa_per_hour, lowest_threshold
from train.metrics import ScoredStream

FRAME_S = 0.02


def stream(seconds: float, peaks: list[tuple[float, float]], spans=(), base: float = 0.01, name: str = ""):
    """Scores at ``base`` with a 0.2 s bump to ``height`` at each ``(time_s, height)``."""
    probs = np.full(int(seconds / FRAME_S), base, np.float32)
    for t, height in peaks:
        i = int(t / FRAME_S)
        probs[i : i + 10] = height
    return ScoredStream(probs, FRAME_S, list(spans), name)


def negatives_with_peaks(heights: list[float], hours: float = 1.0) -> dict:
    """``hours`` of negatives split into streams, one false-alarm bump of each height."""
    n = max(len(heights), 1)
    per_stream_s = hours * 3600 / n
    return {"speech": [stream(per_stream_s, [(per_stream_s / 2, h)]) for h in heights]}


def test_threshold_allows_exactly_the_target_number_of_false_accepts():
    # 1 h with bumps at 0.3, 0.5, 0.7, 0.9: a target of 2/h lets the 0.7 and 0.9 bumps fire.
    negs = negatives_with_peaks([0.3, 0.5, 0.7, 0.9])
    pos = {"clean": [stream(60, [(10, 0.95), (30, 0.6), (50, 0.4)], spans=[(9.5, 10.0), (29.5, 30.0), (49.5, 50.0)])]}
    cal = calibrate(
        negs, pos, CalibrationConfig(target_fa_per_hour=2.0, extra_targets_fa_per_hour=(0.5,), min_negative_hours=0.5)
    )
    two, half = cal.points
    assert 0.5 < two.threshold <= 0.505 and two.false_accepts == 2 and two.target_met
    assert two.miss_rate == pytest.approx(1 / 3)  # only the 0.4 keyword is missed
    assert 0.9 < half.threshold <= 0.905 and half.false_accepts == 0
    assert half.miss_rate == pytest.approx(2 / 3)  # only the 0.95 keyword is hit
    assert cal.threshold == two.threshold
    assert not cal.low_confidence and cal.negative_hours == pytest.approx(1.0)


def test_miss_rate_per_group_and_metadata_shape():
    negs = negatives_with_peaks([0.8], hours=2.0)
    pos = {
        "clean": [stream(30, [(10, 0.9)], spans=[(9.5, 10.0)])],
        "noisy 10 dB": [stream(30, [(10, 0.6)], spans=[(9.5, 10.0)])],
    }
    cal = calibrate(negs, pos, CalibrationConfig(target_fa_per_hour=0.1, extra_targets_fa_per_hour=()))
    point = cal.points[0]
    assert 0.8 < point.threshold <= 0.805
    assert point.miss_rate_by_group == {"clean": 0.0, "noisy 10 dB": 1.0}
    meta = cal.to_meta()
    assert meta["thresholds"] == {"0.1": point.threshold}
    assert meta["decision"] == {"smoothing_frames": 1, "refractory_s": 2.0}
    assert meta["low_confidence"]  # 2 h < the default 4 h minimum
    assert meta["keywords_by_group"] == {"clean": 1, "noisy 10 dB": 1}


def test_false_accepts_that_rise_with_the_threshold_are_handled():
    """A 6 s bump at 0.6 with a short dip to 0.55 half-way: thresholds in (0.55, 0.6] re-arm in
    the dip and fire twice (the refractory period has passed), lower ones fire once, higher ones
    never. With one false accept allowed, the chosen threshold must be one from which *all*
    higher thresholds meet the target (above 0.6), not a lucky low one (0.5 also gives 1/h)."""
    probs = np.full(int(3600 / FRAME_S), 0.01, np.float32)
    i = int(100 / FRAME_S)
    probs[i : i + 300] = 0.6
    probs[i + 150 : i + 152] = 0.55
    negs = [ScoredStream(probs, FRAME_S, [])]
    cfg = CalibrationConfig()
    assert fa_per_hour(negs, cfg, 0.5) == (1.0, 1) and fa_per_hour(negs, cfg, 0.58) == (2.0, 2)
    thr, met = lowest_threshold(negs, cfg, 1.0)
    assert met and 0.6 < thr <= 0.605


def test_target_that_cannot_be_met_is_flagged():
    negs = {"speech": [stream(600, [(100, 1.0)], base=0.9999999)]}
    cal = calibrate(negs, {}, CalibrationConfig(target_fa_per_hour=0.5, extra_targets_fa_per_hour=()))
    assert not cal.points[0].target_met
    assert 0.999 < cal.threshold < 1.0


def test_smoothing_changes_the_threshold():
    """Calibrated under smoothing, a one-frame spike counts less: the threshold can go lower."""
    probs = np.full(int(1800 / FRAME_S), 0.01, np.float32)
    probs[1000] = 0.9  # a single-frame spike
    negs = {"speech": [ScoredStream(probs, FRAME_S, [])]}
    plain, _ = lowest_threshold(negs["speech"], CalibrationConfig(), 0.5)
    smooth, _ = lowest_threshold(negs["speech"], CalibrationConfig(smoothing_frames=4), 0.5)
    assert 0.9 < plain <= 0.905
    assert smooth < 0.25


def test_basis_chooses_the_threshold_and_every_group_is_still_measured():
    # Synthetic speech fires at 0.9, real speech at 0.6: calibrated on the real groups alone,
    # the threshold sits above 0.6 and lets the synthetic bump through -- and says so.
    negs = {"speech": negatives_with_peaks([0.9])["speech"], "real speech": negatives_with_peaks([0.6])["speech"]}
    pos = {"clean": [stream(30, [(10, 0.8)], spans=[(9.5, 10.0)])]}
    cfg = CalibrationConfig(target_fa_per_hour=0.4, extra_targets_fa_per_hour=(), min_negative_hours=0.5)
    everything, real = calibrate(negs, pos, cfg), calibrate(negs, pos, cfg, basis=("real speech",))
    assert everything.threshold > 0.9 and everything.points[0].miss_rate == 1.0
    assert 0.6 < real.threshold <= 0.605 and real.points[0].miss_rate == 0.0
    assert real.points[0].fa_per_hour_by_group == pytest.approx({"speech": 1.0, "real speech": 0.0})
    assert real.basis_hours == pytest.approx(1.0) and real.negative_hours == pytest.approx(2.0)
    meta = real.to_meta()
    assert meta["basis"] == ["real speech"] and meta["basis_hours"] == pytest.approx(1.0)
    assert everything.to_meta()["basis"] == ["speech", "real speech"]
    with pytest.raises(ValueError, match="without streams"):
        calibrate(negs, pos, cfg, basis=("real speech + noise",))
