"""The decision rule with scripted probability sequences: threshold, smoothing, re-arming,
refractory; the incremental Decider and the whole-array detect() agree on any input."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.decision import Decider, DecisionConfig, Detection, detect, smooth

FRAME_S = 0.02


def feed_all(cfg: DecisionConfig, probs, chunk: int = 7, start_s: float = 0.0) -> list[Detection]:
    d = Decider(cfg, FRAME_S)
    out = []
    for i in range(0, len(probs), chunk):
        out += d.feed(np.asarray(probs[i : i + chunk]), start_s + i * FRAME_S)
    return out


def test_one_detection_per_crossing_at_the_first_frame_above():
    probs = [0.1] * 10 + [0.9] * 5 + [0.1] * 10
    dets = feed_all(DecisionConfig(threshold=0.5, refractory_s=0.0), probs)
    assert [round(d.time_s, 6) for d in dets] == [round(11 * FRAME_S, 6)]  # frame 10 ends at 0.22 s
    assert dets[0].score == pytest.approx(0.9)


def test_a_score_that_stays_high_does_not_repeat_but_re_arms_below_threshold():
    probs = [0.9] * 200 + [0.1] + [0.9] * 3
    dets = feed_all(DecisionConfig(threshold=0.5, refractory_s=0.0), probs)
    assert len(dets) == 2
    assert dets[1].time_s == pytest.approx(202 * FRAME_S)


def test_refractory_suppresses_a_second_crossing_too_soon():
    burst = [0.1] * 5 + [0.9] * 2
    probs = burst * 4  # crossings 0.14 s apart
    assert len(feed_all(DecisionConfig(0.5, refractory_s=0.0), probs)) == 4
    assert len(feed_all(DecisionConfig(0.5, refractory_s=1.0), probs)) == 1
    # a crossing that is still above threshold once the refractory ends fires then
    probs = [0.9] * 2 + [0.1] + [0.9] * 100
    dets = feed_all(DecisionConfig(0.5, refractory_s=0.5), probs)
    assert [round(d.time_s, 6) for d in dets] == [round(FRAME_S, 6), round(FRAME_S + 0.5, 6)]


def test_smoothing_ignores_a_single_frame_spike():
    probs = [0.0] * 10 + [1.0] + [0.0] * 10
    assert feed_all(DecisionConfig(0.5, smoothing_frames=1), probs)
    assert not feed_all(DecisionConfig(0.5, smoothing_frames=3), probs)
    np.testing.assert_allclose(smooth([0, 3, 6, 9], 2), [0, 1.5, 4.5, 7.5])


def test_reset_forgets_smoothing_but_keeps_refractory():
    d = Decider(DecisionConfig(0.5, smoothing_frames=4, refractory_s=1.0), FRAME_S)
    assert d.feed(np.array([0.9, 0.9, 0.9, 0.9]), 0.0)
    d.reset()
    # re-armed, smoothing history empty, but within the refractory period: nothing
    assert not d.feed(np.array([0.9] * 10), 0.1)
    assert d.feed(np.array([0.9]), 1.2)  # after the refractory: fires again


def test_start_time_shifts_detection_times():
    dets = feed_all(DecisionConfig(0.5), [0.0, 0.9], start_s=10.0)
    assert dets[0].time_s == pytest.approx(10.04)


def test_config_rejects_bad_values():
    for bad in (
        dict(threshold=0.0),
        dict(threshold=1.0),
        dict(threshold=0.5, smoothing_frames=0),
        dict(threshold=0.5, refractory_s=-1),
    ):
        with pytest.raises(ValueError):
            DecisionConfig(**bad)


@settings(max_examples=150, deadline=None)
@given(
    probs=st.lists(st.floats(0, 1), min_size=0, max_size=120),
    threshold=st.floats(0.05, 0.95),
    smoothing=st.integers(1, 5),
    refractory_frames=st.integers(0, 30),
    chunk=st.integers(1, 40),
)
def test_incremental_and_whole_array_rules_agree(probs, threshold, smoothing, refractory_frames, chunk):
    cfg = DecisionConfig(threshold, smoothing, refractory_frames * FRAME_S)
    a = feed_all(cfg, probs, chunk=chunk, start_s=3.0)
    b = detect(np.asarray(probs), FRAME_S, cfg, start_time_s=3.0)
    assert [round(x.time_s, 9) for x in a] == [round(x.time_s, 9) for x in b]
    np.testing.assert_allclose([x.score for x in a], [x.score for x in b], atol=1e-9)


def test_a_smoothed_score_exactly_on_the_threshold_is_the_same_in_both_forms():
    # 1, 1, .05, .05: the window (.05 + .05) / 2 is exactly .05 when summed in order; a difference
    # of cumulative sums made it 0.0499..., so detect() re-armed and fired a second time at 3.1.
    cfg = DecisionConfig(0.05, smoothing_frames=2, refractory_s=0.0)
    probs = [1.0, 1.0, 0.05, 0.05, 1.0]
    a = feed_all(cfg, probs, chunk=1, start_s=3.0)
    b = detect(np.asarray(probs), FRAME_S, cfg, start_time_s=3.0)
    assert [round(x.time_s, 9) for x in a] == [round(x.time_s, 9) for x in b] == [3.02]
