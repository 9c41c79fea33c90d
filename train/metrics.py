"""Detection-level metrics: miss rate and false accepts per hour, and their DET curve.

A wake-word product is judged by events, not frames: did the keyword fire (once) for each
spoken keyword, and how often did it fire when nobody said it. Detections come from the
device's own decision rule (:func:`device.decision.detect`), so training validation, export
calibration and the benchmark count exactly what the Pi would do.

Matching: a keyword spoken over ``[start_s, end_s]`` is *hit* when some detection falls in
``[start_s, end_s + tolerance_s]``; every other detection is a false accept. False accepts
per hour divide by the stream time outside those keyword windows. A stream may also set
stretches apart (``ignore_spans``, e.g. sound-alikes of the keyword inside validation clips,
counted separately as the benchmark does): detections there are neither hits nor false
accepts, and their time is not negative time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from device.decision import DEFAULT_REFRACTORY_S, DEFAULT_SMOOTHING_FRAMES, DecisionConfig, detect


@dataclass
class ScoredStream:
    probs: np.ndarray
    """Keyword probability per output frame, float ``[frames]``; frame ``i`` ends at ``(i + 1) * frame_s``."""
    frame_s: float
    """Duration of one output frame (s)."""
    keyword_spans: list[tuple[float, float]] = field(default_factory=list)
    """``(start_s, end_s)`` of each spoken keyword in the stream; empty for negative streams."""
    name: str = ""
    ignore_spans: list[tuple[float, float]] = field(default_factory=list)
    """``(start_s, end_s)`` stretches set apart: neither hits nor false accepts nor negative time."""

    @property
    def duration_s(self) -> float:
        return len(self.probs) * self.frame_s


@dataclass(frozen=True)
class Outcome:
    keywords: int
    hits: int
    false_accepts: int
    negative_hours: float

    @property
    def miss_rate(self) -> float:
        return 1.0 - self.hits / self.keywords if self.keywords else float("nan")

    @property
    def fa_per_hour(self) -> float:
        return self.false_accepts / self.negative_hours if self.negative_hours > 0 else float("nan")


def classify(
    detection_times_s: list[float],
    spans: list[tuple[float, float]],
    tolerance_s: float,
    ignore: Sequence[tuple[float, float]] = (),
) -> tuple[list[bool], list[float]]:
    """-> (whether each keyword span was hit, the times of the false accepts) for one stream: a
    detection in ``[start, end + tolerance_s]`` of a span hits it; one outside every span and
    every ``ignore`` stretch is a false accept."""
    hit = [False] * len(spans)
    false_accepts = []
    for t in detection_times_s:
        matched = False
        for k, (start, end) in enumerate(spans):
            if start <= t <= end + tolerance_s:
                hit[k] = matched = True
        if not matched and not any(a <= t <= b for a, b in ignore):
            false_accepts.append(t)
    return hit, false_accepts


def negative_seconds(
    spans: Sequence[tuple[float, float]],
    tolerance_s: float,
    ignore: Sequence[tuple[float, float]],
    start_s: float,
    end_s: float,
) -> float:
    """Seconds of ``[start_s, end_s)`` outside every keyword window (``span + tolerance_s``) and
    ``ignore`` stretch: the time false accepts are counted over."""
    covered = _union_length([(s, e + tolerance_s) for s, e in spans] + list(ignore), end_s, start_s)
    return max(end_s - start_s - covered, 0.0)


def match(
    detection_times_s: list[float],
    spans: list[tuple[float, float]],
    duration_s: float,
    tolerance_s: float,
    ignore: Sequence[tuple[float, float]] = (),
) -> tuple[int, int, float]:
    """-> (hits, false accepts, negative seconds) for one stream."""
    hit, false_accepts = classify(detection_times_s, spans, tolerance_s, ignore)
    return sum(hit), len(false_accepts), negative_seconds(spans, tolerance_s, ignore, 0.0, duration_s)


def _union_length(intervals: list[tuple[float, float]], end_s: float, start_s: float = 0.0) -> float:
    """Length of the union of ``intervals`` inside ``[start_s, end_s]``."""
    clipped = sorted((max(start_s, s), min(end_s, e)) for s, e in intervals)
    clipped = [(s, e) for s, e in clipped if e > s]
    if not clipped:
        return 0.0
    total = 0.0
    cur_start, cur_end = clipped[0]
    for s, e in clipped[1:]:
        if s > cur_end:
            total += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    return total + cur_end - cur_start


def evaluate(streams: list[ScoredStream], cfg: DecisionConfig, tolerance_s: float = 1.0) -> Outcome:
    """Run the decision rule over every stream and count hits and false accepts."""
    keywords = hits = fas = 0
    neg_s = 0.0
    for st in streams:
        times = [d.time_s for d in detect(st.probs, st.frame_s, cfg)]
        h, fa, n = match(times, st.keyword_spans, st.duration_s, tolerance_s, st.ignore_spans)
        keywords += len(st.keyword_spans)
        hits, fas, neg_s = hits + h, fas + fa, neg_s + n
    return Outcome(keywords, hits, fas, neg_s / 3600.0)


def sensible_from(fa_per_hour: np.ndarray) -> int:
    """Index (along ascending thresholds) of the first threshold worth operating at: the one
    with the most false accepts.

    Below it the rule degenerates: a threshold so low that the score never falls under it
    never re-arms the detector, so a whole stream gives one detection -- few false accepts
    *and* nearly every keyword missed, a point nobody would operate at.
    """
    fa = np.nan_to_num(np.asarray(fa_per_hour, float), nan=-1.0)
    return int(np.argmax(fa)) if len(fa) else 0


def operating_index(fa_per_hour: np.ndarray, target_fa_per_hour: float) -> int | None:
    """Operating point for a false-accept target along ascending thresholds: the lowest
    threshold, above the degenerate region, from which *every* higher threshold stays at or
    below the target (false accepts need not fall monotonically as the threshold rises).
    None when even the highest threshold misses the target."""
    fa = np.asarray(fa_per_hour, float)
    start = sensible_from(fa)
    bad = np.flatnonzero(~(fa[start:] <= target_fa_per_hour + 1e-12))
    i = start + (bad[-1] + 1 if len(bad) else 0)
    return None if i >= len(fa) else int(i)


@dataclass(frozen=True)
class SweepOutcomes:
    """What a bootstrap of an operating point draws from: at every setting of a sweep (ascending
    thresholds), the false accepts of each unit of negative audio and whether each keyword was
    heard. ``bench.accuracy`` (the bench's intervals) and ``export.headchoice`` (the head choice's
    resamples) both re-choose the operating point on weighted units with :meth:`miss`."""

    false_accepts: np.ndarray
    """int ``[negative units, settings]``."""
    hours: np.ndarray
    """Negative hours of each unit ``[negative units]``."""
    heard: np.ndarray
    """bool ``[keywords, settings]``."""
    keyword_units: np.ndarray | None = None
    """int ``[keywords]``: which unit a resample draws each keyword with (:func:`speaker_units`:
    one speaker's takes are drawn together, since they tend to be missed together). None: each
    keyword on its own."""

    def keyword_weights(self, rng: np.random.Generator) -> np.ndarray:
        """How often each keyword counts in one bootstrap resample: its unit's draw count."""
        if self.keyword_units is None:
            return resample_weights(self.heard.shape[0], rng)
        units = np.asarray(self.keyword_units, np.int64)
        return resample_weights(int(units.max()) + 1 if units.size else 0, rng)[units]

    def miss(self, target_fa_per_hour: float, units: np.ndarray, keywords: np.ndarray) -> float:
        """Miss rate at the operating point for the target (:func:`operating_index`), each negative
        unit and keyword counted as often as its weight says; 1.0 when no setting meets it."""
        hours = float(units @ self.hours)
        fa = units @ self.false_accepts / hours if hours > 0 else np.zeros(self.false_accepts.shape[1])
        i = operating_index(fa, target_fa_per_hour)
        return 1.0 if i is None else 1.0 - float(keywords @ self.heard[:, i]) / float(keywords.sum())

    def curve(self, settings: np.ndarray) -> DetCurve:
        """The DET curve itself: every unit and keyword counted once, at each of ``settings``
        (the sweep's thresholds, ascending)."""
        n_kw, hours = self.heard.shape[0], float(self.hours.sum())
        miss = 1.0 - self.heard.mean(axis=0) if n_kw else np.full(len(settings), np.nan)
        fa = self.false_accepts.sum(axis=0) / hours if hours > 0 else np.full(len(settings), np.nan)
        return DetCurve(np.asarray(settings, float), miss, fa, n_kw, hours)


def speaker_units(speakers: Sequence[str]) -> np.ndarray:
    """int ``[keywords]``: one unit per named speaker, and each keyword of no known speaker ("")
    a unit of its own (:attr:`SweepOutcomes.keyword_units`)."""
    ids: dict[str | int, int] = {}
    out = np.empty(len(speakers), np.int64)
    for i, who in enumerate(speakers):
        out[i] = ids.setdefault(who or i, len(ids))  # a keyword's index never equals a name
    return out


def resample_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of ``n`` units is drawn in one bootstrap resample (``n`` draws with replacement)."""
    return np.bincount(rng.integers(0, n, n), minlength=n)


def default_thresholds(n: int = 99) -> np.ndarray:
    """Thresholds spaced evenly in logit space, dense near 0 and 1 where operating points live."""
    return 1.0 / (1.0 + np.exp(-np.linspace(-7.0, 9.0, n)))


@dataclass(frozen=True)
class DetCurve:
    thresholds: np.ndarray
    miss_rate: np.ndarray
    fa_per_hour: np.ndarray
    keywords: int
    negative_hours: float

    def at_fa(self, target_fa_per_hour: float) -> tuple[float, float]:
        """(threshold, miss rate) at the operating point for ``target_fa_per_hour``
        (see :func:`operating_index`); (1.0, 1.0) when no swept threshold meets it."""
        i = operating_index(self.fa_per_hour, target_fa_per_hour)
        if i is None:
            return 1.0, 1.0
        return float(self.thresholds[i]), float(self.miss_rate[i])

    def to_dict(self) -> dict:
        return {
            "thresholds": self.thresholds.tolist(),
            "miss_rate": self.miss_rate.tolist(),
            "fa_per_hour": self.fa_per_hour.tolist(),
            "keywords": self.keywords,
            "negative_hours": self.negative_hours,
        }


def det_curve(
    streams: list[ScoredStream],
    thresholds: np.ndarray | None = None,
    smoothing_frames: int = DEFAULT_SMOOTHING_FRAMES,
    refractory_s: float = DEFAULT_REFRACTORY_S,
    tolerance_s: float = 1.0,
) -> DetCurve:
    """Miss rate and false accepts/h for each threshold (ascending)."""
    thresholds = np.sort(default_thresholds() if thresholds is None else np.asarray(thresholds, float))
    miss, fa = [], []
    outcome = None
    for thr in thresholds:
        outcome = evaluate(streams, DecisionConfig(float(thr), smoothing_frames, refractory_s), tolerance_s)
        miss.append(outcome.miss_rate)
        fa.append(outcome.fa_per_hour)
    keywords = outcome.keywords if outcome else 0
    hours = outcome.negative_hours if outcome else 0.0
    return DetCurve(thresholds, np.array(miss), np.array(fa), keywords, hours)
