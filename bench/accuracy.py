"""Miss rate at a false-accept rate, from the daemon's frame scores (or a peer's detections).

For each condition (``clean``, ``10 dB``) the false-accept axis is counted on *all* ordinary
negative speech of that condition -- the held-out synthetic voices' hours and the real negatives
together -- and on the stretches of the positive streams outside keyword windows, exactly as
:mod:`train.metrics` counts. The miss rate is counted per source (``synthetic``, ``real``),
so "real, 10 dB, miss @ 0.5 FA/h" reads: with the threshold that gives at most 0.5 false accepts
per hour of noisy speech, the share of real noisy keywords missed. Beside each operating point,
the false accepts on the real negatives alone (fewer hours) and on the near-homophone
confusables (never pooled) are counted on their own (:func:`side_counts`).

Sweeps use the device's own rule (:func:`device.decision.detect`) on the per-frame
probabilities the daemon printed, so every point of the curve is what the daemon would do at
that threshold. One sweep per curve (:func:`swept`) records each keyword's outcome and each
minute of negative audio's false accepts; the curve is their sum (what
:func:`train.metrics.det_curve` counts in training and export) and the bootstrap intervals
are drawn from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.testsets import HARD_NEGATIVES, TestAudio
from device.decision import DecisionConfig, detect
from train.metrics import (
    DetCurve,
    ScoredStream,
    SweepOutcomes,
    classify,
    evaluate,
    match,
    negative_seconds,
    operating_index,
    resample_weights,
    speaker_units,
)


def sweep_thresholds(n: int) -> np.ndarray:
    """``n`` thresholds evenly spaced in logit from -8 to 16 (probability 3e-4 .. 1 - 1e-7): the
    operating points of a good model sit very close to 1."""
    return 1.0 / (1.0 + np.exp(-np.linspace(-8.0, 16.0, n)))


def scored(test: TestAudio, probs: np.ndarray, frame_s: float) -> ScoredStream:
    return ScoredStream(np.asarray(probs, np.float64), frame_s, list(test.spans), test.wav.name, list(test.ignore))


@dataclass(frozen=True)
class Point:
    target_fa_per_hour: float
    threshold: float
    """Lowest swept threshold meeting the target (1.0 when none does)."""
    miss_rate: float
    fa_per_hour: float
    """Measured false accepts/h at that threshold."""
    miss_low: float = float("nan")
    miss_high: float = float("nan")
    """Bootstrap interval of the miss rate at this target (:func:`with_intervals`): the same
    operating point re-chosen on resampled keywords and blocks of negative time."""


@dataclass
class SetResult:
    """One (source, condition): its DET curve and the operating points on it."""

    source: str
    condition: str
    curve: DetCurve
    points: list[Point]

    @property
    def keywords(self) -> int:
        return self.curve.keywords

    @property
    def negative_hours(self) -> float:
        return self.curve.negative_hours

    def at(self, target: float) -> Point:
        return next(p for p in self.points if p.target_fa_per_hour == target)


def curve_points(curve: DetCurve, targets: tuple[float, ...]) -> list[Point]:
    """The operating point for each false-accept target (:func:`train.metrics.operating_index`);
    threshold 1.0, miss rate 1.0 when none meets it."""
    fa = np.asarray(curve.fa_per_hour, float)
    out = []
    for t in targets:
        i = operating_index(fa, t)
        if i is None:
            out.append(Point(t, 1.0, 1.0, float("nan")))
        else:
            out.append(Point(t, float(curve.thresholds[i]), float(curve.miss_rate[i]), float(fa[i])))
    return out


def set_items(tests: list[TestAudio], condition: str, source: str) -> list[TestAudio]:
    """The WAVs one (voices, condition) curve counts: that source's keyword WAVs of the condition
    (their gaps between keywords count as negative time too), then all ordinary negatives of the
    condition (confusables are never pooled)."""
    pos = [t for t in tests if t.spec.condition == condition and t.spec.positive and t.spec.source == source]
    neg = [
        t for t in tests if t.spec.condition == condition and not t.spec.positive and t.spec.source != HARD_NEGATIVES
    ]
    return pos + neg


def resampling(
    items: list[TestAudio],
    detections: Callable[[TestAudio, float], list[float]],
    settings: np.ndarray,
    tolerance_s: float,
    block_s: float,
) -> SweepOutcomes:
    """Every keyword's outcome and every ``block_s`` of negative time's false accepts, at each
    of ``settings`` (ascending; a threshold, or a peer's ``1 - sensitivity``)."""
    blocks: list[tuple[TestAudio, float, float]] = []
    where: dict[str, tuple[int, int]] = {}  # WAV -> (its first block, its block count)
    for t in items:
        starts = np.arange(0.0, t.duration_s, block_s).tolist()
        where[t.wav.name] = (len(blocks), len(starts))
        blocks += [(t, a, min(a + block_s, t.duration_s)) for a in starts]
    hours = np.array([negative_seconds(t.spans, tolerance_s, t.ignore, a, b) / 3600 for t, a, b in blocks])
    hits = np.zeros((sum(len(t.spans) for t in items), len(settings)), bool)
    fas = np.zeros((len(blocks), len(settings)), int)
    for i, setting in enumerate(settings):
        k = 0
        for t in items:
            hit, fa_times = classify(detections(t, float(setting)), list(t.spans), tolerance_s, t.ignore)
            hits[k : k + len(hit), i] = hit
            k += len(hit)
            first, count = where[t.wav.name]
            for when in fa_times:
                fas[first + min(max(int(when // block_s), 0), count - 1), i] += 1
    speakers = [who for t in items for who in (t.speakers or ("",) * len(t.spans))]
    return SweepOutcomes(fas, hours, hits, speaker_units(speakers))


def with_intervals(
    points: list[Point], r: SweepOutcomes, draws: int, level: float, rng: np.random.Generator
) -> list[Point]:
    """``points`` with the central ``level`` interval of their miss rates over ``draws`` bootstrap
    resamples: speakers (each keyword of no known speaker on its own; a speaker's keywords come
    together) and blocks of negative time drawn with replacement, the operating point
    re-chosen on each draw's false accepts (so the interval includes how much the threshold
    moves with which few negatives score highest), the miss rate read on its keywords."""
    n_kw, n_blocks = r.heard.shape[0], len(r.hours)
    if draws < 1 or n_kw == 0 or n_blocks == 0:
        return points
    misses = np.empty((len(points), draws))
    for d in range(draws):
        keywords, blocks = r.keyword_weights(rng), resample_weights(n_blocks, rng)
        for j, p in enumerate(points):
            misses[j, d] = r.miss(p.target_fa_per_hour, blocks, keywords)
    lo, hi = np.percentile(misses, [50 * (1 - level), 50 * (1 + level)], axis=1)
    return [dataclasses.replace(p, miss_low=float(a), miss_high=float(b)) for p, a, b in zip(points, lo, hi)]


def swept(
    tests: list[TestAudio],
    source: str,
    condition: str,
    detections: Callable[[TestAudio, float], list[float]],
    settings: np.ndarray,
    bc,
    rng: np.random.Generator,
) -> SetResult:
    """One (voices, condition) curve in one sweep: every keyword's outcome and every block of
    negative time's false accepts at each of ``settings`` (ascending thresholds, or a peer's
    ``1 - sensitivity``); the DET curve is their sum, its operating points are read off it for
    ``bc.fa_targets_per_hour``, and their bootstrap intervals are drawn from the same outcomes
    (``bc``: the ``[bench]`` settings)."""
    r = resampling(set_items(tests, condition, source), detections, settings, bc.tolerance_s, bc.interval_block_s)
    curve = r.curve(settings)
    points = with_intervals(curve_points(curve, bc.fa_targets_per_hour), r, bc.interval_draws, bc.interval_level, rng)
    return SetResult(source, condition, curve, points)


def keyword_sets(tests: list[TestAudio]) -> list[tuple[str, str]]:
    """The (voices, condition) pairs that have keywords: one curve each."""
    return sorted({(t.spec.source, t.spec.condition) for t in tests if t.spec.positive})


def side_sets(tests: list[TestAudio], condition: str) -> dict[str, list[TestAudio]]:
    """Negative audio of ``condition`` also counted on its own: ``real negatives``, ``confusables``."""
    out: dict[str, list[TestAudio]] = {}
    for t in tests:
        if not t.spec.positive and t.spec.condition == condition and t.spec.source in ("real", HARD_NEGATIVES):
            out.setdefault("confusables" if t.spec.source == HARD_NEGATIVES else "real negatives", []).append(t)
    return out


def side_counts(
    tests: list[TestAudio],
    condition: str,
    thresholds: list[float],
    detections: Callable[[TestAudio, float], list[float]],
    tolerance_s: float,
) -> dict[str, list[dict]]:
    """For each side set and each threshold: false accepts, hours, utterances (where known).

    ``detections(test, threshold)``: detection times of an engine on one WAV at one setting.
    """
    out = {}
    for label, items in side_sets(tests, condition).items():
        rows = []
        for thr in thresholds:
            fas, neg_s = 0, 0.0
            for t in items:
                _, f, n = match(detections(t, thr), [], t.duration_s, tolerance_s)
                fas, neg_s = fas + f, neg_s + n
            rows.append({"false_accepts": fas, "hours": neg_s / 3600, "utterances": sum(t.clips for t in items)})
        out[label] = rows
    return out


def rule_detections(
    streams: dict[str, ScoredStream], decision: DecisionConfig
) -> Callable[[TestAudio, float], list[float]]:
    """:func:`side_counts`' ``detections`` for an engine with scores: the decision rule at a threshold."""

    def run(t: TestAudio, threshold: float) -> list[float]:
        cfg = DecisionConfig(min(threshold, 1 - 1e-9), decision.smoothing_frames, decision.refractory_s)
        st = streams[t.wav.name]
        return [d.time_s for d in detect(st.probs, st.frame_s, cfg)]

    return run


def at_threshold(
    tests: list[TestAudio], streams: dict[str, ScoredStream], decision: DecisionConfig, tolerance_s: float
) -> dict[str, dict]:
    """At one decision config (the model's calibrated threshold): per (source, condition, side)
    the miss rate (positives) or false accepts/h (negatives)."""
    out = {}
    for t in tests:
        o = evaluate([streams[t.wav.name]], decision, tolerance_s)
        out[t.spec.slug] = {
            "source": t.spec.source,
            "condition": t.spec.condition,
            "positive": t.spec.positive,
            "keywords": o.keywords,
            "hits": o.hits,
            "false_accepts": o.false_accepts,
            "hours": o.negative_hours,
            "miss_rate": o.miss_rate,
            "fa_per_hour": o.fa_per_hour,
        }
    return out


# -- engines that only give detections (Porcupine) ------------------------------------------


def refractory(times_s: list[float], refractory_s: float) -> list[float]:
    """Drop detections closer than ``refractory_s`` to the previous kept one (the device's rule,
    applied to an engine that reports detections without it)."""
    kept: list[float] = []
    for t in sorted(times_s):
        if not kept or t - kept[-1] >= refractory_s - 1e-9:
            kept.append(t)
    return kept
