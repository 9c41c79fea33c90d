"""The benchmark's counting on scripted scores and detections: known answers, monotone sweeps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import accuracy
from bench.config import BenchConfig
from bench.testsets import SetSpec, TestAudio
from device.decision import DecisionConfig
from train.metrics import det_curve, sensible_from

FRAME_S = 0.02
TOL_S = 1.0


def _audio(spec: SetSpec, name: str, spans, duration_s: float) -> TestAudio:
    return TestAudio(spec, Path(f"/nowhere/{name}.wav"), tuple(spans), duration_s, 1)


def _probs(duration_s: float, spikes: list[tuple[float, float]]) -> np.ndarray:
    """Low scores with a 0.2 s spike of height ``p`` ending at each ``(time_s, p)``."""
    probs = np.full(int(round(duration_s / FRAME_S)), 0.01)
    for t, p in spikes:
        end = int(round(t / FRAME_S))
        probs[end - 10 : end] = p
    return probs


@pytest.fixture()
def scripted():
    """Positives: 4 keywords, 3 found (scores 0.9, 0.7, 0.95 just after their ends), one never;
    one false spike (0.6) in a gap. Negatives: 30 min with spikes 0.8, 0.55, 0.3."""
    spans = [(2.0, 2.5), (6.0, 6.6), (10.0, 10.4), (14.0, 14.5)]
    pos_spikes = [(2.7, 0.9), (6.8, 0.7), (10.5, 0.95), (17.5, 0.6)]
    pos = _audio(SetSpec("real", "clean", True), "pos", spans, 20.0)
    neg = _audio(SetSpec("synthetic", "clean", False), "neg", [], 1800.0)
    streams = {
        "pos.wav": accuracy.scored(pos, _probs(20.0, pos_spikes), FRAME_S),
        "neg.wav": accuracy.scored(neg, _probs(1800.0, [(100, 0.8), (900, 0.55), (1500, 0.3)]), FRAME_S),
    }
    return [pos, neg], streams, spans


def _sets(tests, streams, decision, targets, thresholds, draws=0, seed=1) -> list[accuracy.SetResult]:
    """The bench's curves of a scored model, one per (voices, condition) with keywords."""
    bc = BenchConfig(fa_targets_per_hour=targets, interval_draws=draws, tolerance_s=TOL_S)
    rule = accuracy.rule_detections(streams, decision)
    rng = np.random.default_rng(seed)
    return [
        accuracy.swept(tests, source, condition, rule, np.asarray(thresholds, float), bc, rng)
        for source, condition in accuracy.keyword_sets(tests)
    ]


def _negative_hours(spans, duration_s: float) -> float:
    return (duration_s - sum(e + TOL_S - s for s, e in spans)) / 3600


def test_known_miss_rate_and_false_accepts(scripted):
    tests, streams, spans = scripted
    out = accuracy.at_threshold(tests, streams, DecisionConfig(0.5, 1, 2.0), TOL_S)
    pos, neg = out["real-clean-pos"], out["synthetic-clean-neg"]
    assert (pos["keywords"], pos["hits"], pos["false_accepts"]) == (4, 3, 1)
    assert pos["miss_rate"] == pytest.approx(0.25)
    assert pos["hours"] == pytest.approx(_negative_hours(spans, 20.0))
    assert neg["false_accepts"] == 2 and neg["hours"] == pytest.approx(0.5)
    assert neg["fa_per_hour"] == pytest.approx(4.0)
    # above the 0.8 spike only the 0.9 and 0.95 keywords remain, and nothing false
    out = accuracy.at_threshold(tests, streams, DecisionConfig(0.85, 1, 2.0), TOL_S)
    assert out["real-clean-pos"]["hits"] == 2 and out["synthetic-clean-neg"]["false_accepts"] == 0


def test_operating_points_pool_negatives_per_condition(scripted):
    tests, streams, spans = scripted
    thresholds = np.array([0.2, 0.5, 0.58, 0.65, 0.75, 0.85, 0.97])
    (res,) = _sets(tests, streams, DecisionConfig(0.5), (2.5, 0.1), thresholds)
    hours = 0.5 + _negative_hours(spans, 20.0)
    assert (res.source, res.condition, res.keywords) == ("real", "clean", 4)
    assert res.negative_hours == pytest.approx(hours)
    # false accepts at each threshold: 0.2 -> 4 (0.8, 0.55, 0.3, 0.6 spikes), 0.5 -> 3, 0.58 -> 2,
    # 0.65 -> 1, 0.75 -> 1, 0.85 -> 0; misses 1, 1, 1, 1, 2, 2, 4 of 4
    np.testing.assert_allclose(res.curve.fa_per_hour, np.array([4, 3, 2, 1, 1, 0, 0]) / hours)
    np.testing.assert_allclose(res.curve.miss_rate, [0.25, 0.25, 0.25, 0.25, 0.5, 0.5, 1.0])
    # 2.5 FA/h allows one false accept (1 / 0.5 h = 2 /h): the lowest such threshold is 0.65
    assert res.at(2.5).threshold == pytest.approx(0.65) and res.at(2.5).miss_rate == pytest.approx(0.25)
    assert res.at(0.1).threshold == pytest.approx(0.85) and res.at(0.1).miss_rate == pytest.approx(0.5)


def test_no_threshold_meets_an_impossible_target(scripted):
    tests, streams, _ = scripted
    (res,) = _sets(tests, streams, DecisionConfig(0.5), (0.1,), np.array([0.2, 0.5]))
    assert res.at(0.1).threshold == 1.0 and res.at(0.1).miss_rate == 1.0


def test_threshold_sweep_is_monotone():
    """Keywords and false bumps of random strength: raising the threshold can only lose
    detections, so miss rate rises and false accepts fall along the sweep."""
    rng = np.random.default_rng(3)
    spans = [(3.0 * k + 1.0, 3.0 * k + 1.5) for k in range(40)]
    pos_probs = _probs(125.0, [(e + 0.3, rng.uniform(0.05, 1.0)) for _, e in spans])
    neg_probs = _probs(3600.0, [(t, rng.beta(0.5, 2.0)) for t in np.arange(5.0, 3600.0, 7.0)])
    pos = _audio(SetSpec("synthetic", "clean", True), "p", spans, 125.0)
    neg = _audio(SetSpec("synthetic", "clean", False), "n", [], 3600.0)
    streams = {"p.wav": accuracy.scored(pos, pos_probs, FRAME_S), "n.wav": accuracy.scored(neg, neg_probs, FRAME_S)}
    for smoothing in (1, 3):
        (res,) = _sets([pos, neg], streams, DecisionConfig(0.5, smoothing), (0.5,), accuracy.sweep_thresholds(60))
        i = sensible_from(res.curve.fa_per_hour)
        assert np.all(np.diff(res.curve.thresholds) > 0)
        assert np.all(np.diff(res.curve.miss_rate[i:]) >= 0), "miss rate must not fall as the threshold rises"
        assert np.all(np.diff(res.curve.fa_per_hour[i:]) <= 0), "false accepts must not rise with the threshold"
        assert res.curve.fa_per_hour[i] > 100 and res.curve.miss_rate[i] == 0.0  # the sweep spans the range
        assert res.curve.miss_rate[-1] == 1.0 and res.curve.fa_per_hour[-1] == 0.0


def test_operating_point_skips_thresholds_that_never_rearm():
    """A threshold under the score floor gives one endless run: few false accepts but nearly all
    keywords missed. The operating point must come from the sensible part of the sweep."""
    spans = [(4.0 * k + 1.0, 4.0 * k + 1.5) for k in range(10)]
    probs = _probs(40.0, [(e + 0.3, 0.9) for _, e in spans])
    probs[probs < 0.5] = 0.05  # a floor of 0.05 everywhere else
    neg_probs = np.full(int(3600 / FRAME_S), 0.05)
    neg_probs[[5000, 90000]] = 0.3  # two false bumps
    pos = _audio(SetSpec("real", "clean", True), "p", spans, 40.0)
    neg = _audio(SetSpec("real", "clean", False), "n", [], 3600.0)
    streams = {"p.wav": accuracy.scored(pos, probs, FRAME_S), "n.wav": accuracy.scored(neg, neg_probs, FRAME_S)}
    (res,) = _sets([pos, neg], streams, DecisionConfig(0.5), (1.5,), np.array([0.01, 0.1, 0.2, 0.4, 0.95]))
    assert res.curve.miss_rate[0] == 1.0  # one detection at the very start of the stream
    p = res.at(1.5)
    assert p.threshold == pytest.approx(0.4) and p.miss_rate == 0.0 and p.fa_per_hour == 0.0


def test_detections_only_engine_curve():
    spans = [(1.0, 1.5), (5.0, 5.5)]
    pos = _audio(SetSpec("real", "clean", True), "p", spans, 3600.0)
    neg = _audio(SetSpec("real", "clean", False), "n", [], 3600.0)
    # a larger setting = less sensitive: fewer detections
    runs = {0.2: {"p.wav": [1.6, 5.2, 40.0], "n.wav": [10.0, 11.0, 500.0]}, 0.8: {"p.wav": [1.6], "n.wav": []}}
    bc = BenchConfig(fa_targets_per_hour=(1.0,), interval_draws=0, tolerance_s=TOL_S)
    res = accuracy.swept([pos, neg], "real", "clean", lambda t, s: runs[s][t.wav.name], np.array([0.2, 0.8]), bc, None)
    curve = res.curve
    np.testing.assert_allclose(curve.thresholds, [0.2, 0.8])
    np.testing.assert_allclose(curve.miss_rate, [0.0, 0.5])
    hours = (7200 - 2 * (0.5 + TOL_S)) / 3600
    np.testing.assert_allclose(curve.fa_per_hour, [4 / hours, 0.0])
    assert res.at(1.0).miss_rate == pytest.approx(0.5)


def test_refractory_filter_matches_the_device_rule():
    assert accuracy.refractory([0.0, 1.0, 1.99, 2.0, 2.5, 9.0], 2.0) == [0.0, 2.0, 9.0]
    assert accuracy.refractory([3.0, 1.0], 0.0) == [1.0, 3.0]


def test_confusables_stay_out_of_the_pool_and_are_counted_apart(scripted):
    from bench.testsets import HARD_NEGATIVES

    tests, streams, _ = scripted
    conf = TestAudio(SetSpec(HARD_NEGATIVES, "clean", False), Path("/nowhere/conf.wav"), (), 60.0, 1, clips=20)
    real = _audio(SetSpec("real", "clean", False), "realneg", [], 360.0)
    streams = {
        **streams,
        "conf.wav": accuracy.scored(conf, _probs(60.0, [(3.0 * k + 2, 0.7) for k in range(12)]), FRAME_S),
        "realneg.wav": accuracy.scored(real, _probs(360.0, [(100.0, 0.9)]), FRAME_S),
    }
    thresholds = np.array([0.5, 0.65, 0.75, 0.95])
    (res,) = _sets(tests + [conf, real], streams, DecisionConfig(0.5), (2.5,), thresholds)
    # the twelve 0.7 confusables change nothing in the FA/h pool; the real negative's 0.9 spike does
    assert res.negative_hours == pytest.approx(0.5 + 0.1 + 14 / 3600)
    rule = accuracy.rule_detections(streams, DecisionConfig(0.5))
    side = accuracy.side_counts(tests + [conf, real], "clean", [0.65, 0.75], rule, TOL_S)
    # 2 s refractory: of the spikes 3 s apart every one fires
    assert side["confusables"] == [
        {"false_accepts": 12, "hours": pytest.approx(60 / 3600), "utterances": 20},
        {"false_accepts": 0, "hours": pytest.approx(60 / 3600), "utterances": 20},
    ]
    assert [r["false_accepts"] for r in side["real negatives"]] == [1, 1]


def test_a_peer_target_no_sensitivity_reached_is_not_reported_as_a_miss_rate():
    from bench import report

    peer = {
        "sets": [
            {
                "source": "real",
                "condition": "clean",
                "points": [
                    {
                        "target_fa_per_hour": 0.5,
                        "threshold": 0.5,
                        "miss_rate": 0.2,
                        "fa_per_hour": 0.3,
                        "sensitivity": 0.5,
                    },
                    {
                        "target_fa_per_hour": 0.1,
                        "threshold": 1.0,
                        "miss_rate": 1.0,
                        "fa_per_hour": float("nan"),
                        "sensitivity": None,
                    },
                ],
            }
        ]
    }
    assert report._miss_cell(peer, "real", "clean", 0.5) == "20.0 %"
    assert report._miss_cell(peer, "real", "clean", 0.1) == "not reached"
    assert report._miss(peer, "real", "clean", 0.1) is None  # so no ratio is drawn from it
    assert report._miss_cell(peer, "real", "10 dB", 0.1) == "-"


def _many(n_keywords: int, neg_hours: float, high_negatives: list[float], seed: int = 0):
    """Keywords scoring 0.5..0.99 (one per 5 s), and ``neg_hours`` of negatives spiking at 0.3
    every minute plus one spike at each of ``high_negatives``."""
    rng = np.random.default_rng(seed)
    spans = [(5.0 * k + 1.0, 5.0 * k + 1.5) for k in range(n_keywords)]
    scores = rng.uniform(0.5, 0.99, n_keywords)
    pos = _audio(SetSpec("real", "clean", True), "pos", spans, 5.0 * n_keywords)
    duration = neg_hours * 3600
    spikes = [(60.0 * m + 30.0, 0.3) for m in range(int(duration // 60))]
    spikes += [(duration * (j + 1) / (len(high_negatives) + 1) + 7.0, p) for j, p in enumerate(high_negatives)]
    neg = _audio(SetSpec("real", "clean", False), "neg", [], duration)
    streams = {
        "pos.wav": accuracy.scored(
            pos, _probs(pos.duration_s, [(e + 0.1, p) for (_, e), p in zip(spans, scores)]), FRAME_S
        ),
        "neg.wav": accuracy.scored(neg, _probs(duration, spikes), FRAME_S),
    }
    return [pos, neg], streams


def _intervals(tests, streams, draws=300, seed=1):
    decision = DecisionConfig(0.5, 1, 2.0)
    thresholds = accuracy.sweep_thresholds(97)
    (s,) = _sets(tests, streams, decision, (0.5,), thresholds, draws, seed)
    rule = accuracy.rule_detections(streams, decision)
    r = accuracy.resampling(accuracy.set_items(tests, "clean", "real"), rule, thresholds, TOL_S, 60.0)
    return s, r, s.points[0]


def test_the_bench_curve_counts_what_training_and_export_count():
    """Keyword outcomes and false accepts per block of negative time, summed, give the DET curve
    that :func:`train.metrics.det_curve` counts over whole streams (what validation and the
    export's calibration use), at every swept threshold: the bench's curve and the bootstrap
    behind its intervals are one count."""
    tests, streams = _many(40, 0.5, [0.97, 0.9])
    s, r, _ = _intervals(tests, streams, draws=1)
    assert r.heard.shape == (40, len(s.curve.thresholds))
    whole = det_curve(list(streams.values()), s.curve.thresholds, 1, 2.0, TOL_S)
    np.testing.assert_allclose(s.curve.fa_per_hour, whole.fa_per_hour)
    np.testing.assert_allclose(s.curve.miss_rate, whole.miss_rate)
    assert s.curve.negative_hours == pytest.approx(whole.negative_hours)
    assert s.keywords == whole.keywords == 40
    ones = np.ones(len(r.hours)), np.ones(40)  # every unit once: the operating point itself
    assert r.miss(0.5, *ones) == s.points[0].miss_rate


def test_an_operating_point_on_a_few_high_negatives_gets_a_wide_interval():
    """Two negatives far above the rest set the 0.5 FA/h point over 2 h (at most one false
    accept): resamples that leave one out move the threshold down past many keywords. Without
    them the point is set by the 0.3 floor and barely moves."""
    tests, streams = _many(60, 2.0, [0.98, 0.96])
    _, _, shaky = _intervals(tests, streams)
    assert shaky.miss_low <= shaky.miss_rate <= shaky.miss_high
    assert shaky.miss_high - shaky.miss_low > 0.3
    tests, streams = _many(60, 2.0, [])
    _, _, steady = _intervals(tests, streams)
    assert steady.miss_rate == 0.0 and steady.miss_low == steady.miss_high == 0.0


def test_the_headline_shows_the_interval_beside_the_miss_rate():
    from bench.report import _miss_cell

    point = {"target_fa_per_hour": 0.5, "threshold": 0.98, "miss_rate": 0.119, "fa_per_hour": 0.3}
    engine = {"sets": [{"source": "real", "condition": "clean", "points": [point]}]}
    assert _miss_cell(engine, "real", "clean", 0.5) == "11.9 %"
    point.update(miss_low=0.071, miss_high=0.213)
    assert _miss_cell(engine, "real", "clean", 0.5) == "11.9 % (7.1-21.3)"


def test_a_speakers_takes_are_drawn_together():
    """The interval draws speakers, not takes: one speaker's takes tend to be missed together, so
    drawing them one by one would make the interval too narrow. Negatives spike at 0.6 every minute
    (the 0.5 FA/h point sits just above, whatever blocks are drawn), a quarter of the keywords
    score 0.55 (missed), the rest 0.95."""
    from train.metrics import speaker_units

    assert speaker_units(["a", "b", "", "a", ""]).tolist() == [0, 1, 2, 0, 3]  # unknown: each its own
    n = 40
    spans = [(5.0 * k + 1.0, 5.0 * k + 1.5) for k in range(n)]
    scores = [0.55 if k % 4 == 0 else 0.95 for k in range(n)]
    neg = _audio(SetSpec("real", "clean", False), "neg", [], 7200.0)
    negatives = accuracy.scored(neg, _probs(7200.0, [(60.0 * m + 30.0, 0.6) for m in range(120)]), FRAME_S)
    probs = _probs(5.0 * n, [(e + 0.1, p) for (_, e), p in zip(spans, scores)])

    def interval(speakers: tuple[str, ...]) -> tuple[float, float, float]:
        pos = TestAudio(
            SetSpec("real", "clean", True), Path("/nowhere/pos.wav"), tuple(spans), 5.0 * n, 1, 0, (), speakers
        )
        streams = {"pos.wav": accuracy.scored(pos, probs, FRAME_S), "neg.wav": negatives}
        _, _, p = _intervals([pos, neg], streams, draws=400)
        return p.miss_rate, p.miss_low, p.miss_high

    assert interval(("one",) * n) == (0.25, 0.25, 0.25)  # one speaker: every draw is the same set
    alone = interval(("",) * n)  # no speaker known: the takes are drawn one by one
    assert alone[0] == 0.25 and alone[2] - alone[1] > 0.15
    # each missed take's speaker said one heard take too: drawn in pairs, the spread is narrower
    # than the takes alone would show, and a speaker who missed both makes it wider
    mixed = tuple(f"s{k // 2}" if k % 4 in (0, 1) else f"t{k}" for k in range(n))
    paired = tuple(f"s{(k // 4) % 5}" if k % 4 == 0 else f"h{k}" for k in range(n))
    assert interval(mixed)[2] - interval(mixed)[1] < alone[2] - alone[1]
    assert interval(paired)[2] - interval(paired)[1] > alone[2] - alone[1]
