"""Threshold calibration: the lowest threshold that keeps false accepts per hour within a target.

Input: scored streams (:class:`train.metrics.ScoredStream`, probabilities from the exported
model) of negative audio -- speech and noise from voices training never saw -- and of
positive audio (held-out keyword utterances in context). Detections come from the device's
own rule (:func:`device.decision.detect`, via :func:`train.metrics.evaluate`), so the threshold
means on the Pi what it meant here.

The search runs on a dense grid in logit space, takes the lowest grid threshold from which
*every* higher one meets the target (false accepts need not fall strictly as the threshold
rises, because of re-arming and the refractory period), then bisects between it and the grid
point below. With ``h`` negative hours the smallest non-zero rate that can be measured is
``1 / h`` per hour: with fewer hours than ``1 / target`` the target can only be met with zero
false accepts, and the result is flagged ``low_confidence``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

import numpy as np

from device.decision import DEFAULT_REFRACTORY_S, DEFAULT_SMOOTHING_FRAMES, DecisionConfig
from train.metrics import ScoredStream, evaluate, operating_index

log = logging.getLogger(__name__)

GRID_LOGITS = np.linspace(-9.0, 12.0, 211)
"""Threshold grid as logits: ~0.0001 .. 0.999994, 0.1 apart in logit space."""
BISECT_STEPS = 14


@dataclass(frozen=True)
class CalibrationConfig:
    """How thresholds are chosen; the ``[export]`` section carries the same names."""

    target_fa_per_hour: float = 0.5
    """False accepts per hour the default threshold must not exceed."""
    extra_targets_fa_per_hour: tuple[float, ...] = (0.1,)
    """Further operating points stored in the calibration JSON (thresholds and miss rates)."""
    smoothing_frames: int = DEFAULT_SMOOTHING_FRAMES
    """Decision smoothing (output frames) the thresholds are calibrated under; stored for the device."""
    refractory_s: float = DEFAULT_REFRACTORY_S
    """Minimum time between two detections (s) the thresholds are calibrated under; stored for the device."""
    tolerance_s: float = 1.0
    """A detection up to this long after a keyword ends still counts as a hit (s)."""
    min_negative_hours: float = 4.0
    """Fewer negative hours than this mark the calibration ``low_confidence`` (report + metadata)."""

    def __post_init__(self) -> None:
        if self.target_fa_per_hour <= 0 or any(t <= 0 for t in self.extra_targets_fa_per_hour):
            raise ValueError("false-accept targets must be positive")


@dataclass(frozen=True)
class OperatingPoint:
    target_fa_per_hour: float
    threshold: float
    fa_per_hour: float
    """Measured false accepts/h on the negative streams at ``threshold``."""
    false_accepts: int
    miss_rate: float
    """Over all positive streams."""
    miss_rate_by_group: dict
    """Positive group name -> miss rate."""
    target_met: bool
    fa_per_hour_by_group: dict = field(default_factory=dict)
    """Negative group name -> false accepts per hour at ``threshold`` (every group, also those
    the threshold was not chosen on: how a threshold set on real audio does on synthetic, and back)."""


@dataclass(frozen=True)
class Calibration:
    config: CalibrationConfig
    points: list[OperatingPoint]
    """One per target, the default target first."""
    negative_hours: float
    negative_hours_by_group: dict
    keywords: int
    keywords_by_group: dict
    low_confidence: bool
    curve: dict = field(repr=False)
    """``{"thresholds", "fa_per_hour", "miss_rate"}`` lists over the grid (for DET plots)."""
    basis: tuple = ()
    """The negative groups the thresholds were chosen on (all of them when empty)."""
    real_negatives: dict = field(default_factory=dict)
    """Where the real negative audio came from (``export.heldout.RealNegatives.describe``), if any."""
    other_bases: dict = field(default_factory=dict)
    """For the report: the default target's threshold had it been chosen on other groups,
    e.g. ``{"synthetic": {"basis": [...], "threshold": t, "miss_rate": m}}``."""

    @property
    def basis_hours(self) -> float:
        groups = self.basis or tuple(self.negative_hours_by_group)
        return sum(self.negative_hours_by_group.get(g, 0.0) for g in groups)

    @property
    def threshold(self) -> float:
        """The default threshold: the one for ``config.target_fa_per_hour``."""
        return self.points[0].threshold

    def to_meta(self) -> dict:
        """The ``wakeword.calibration`` JSON stored in the model (see device.modelmeta)."""

        def key(target: float) -> str:
            return f"{target:g}"

        return {
            "target_fa_per_hour": self.config.target_fa_per_hour,
            "thresholds": {key(p.target_fa_per_hour): p.threshold for p in self.points},
            "miss_rate": {key(p.target_fa_per_hour): p.miss_rate for p in self.points},
            "fa_per_hour": {key(p.target_fa_per_hour): p.fa_per_hour for p in self.points},
            "target_met": {key(p.target_fa_per_hour): p.target_met for p in self.points},
            "decision": {"smoothing_frames": self.config.smoothing_frames, "refractory_s": self.config.refractory_s},
            "tolerance_s": self.config.tolerance_s,
            "fa_per_hour_by_group": {
                key(p.target_fa_per_hour): {g: round(v, 4) for g, v in p.fa_per_hour_by_group.items()}
                for p in self.points
            },
            "basis": list(self.basis or self.negative_hours_by_group),
            "basis_hours": round(self.basis_hours, 4),
            "negative_hours": round(self.negative_hours, 4),
            "negative_hours_by_group": {k: round(v, 4) for k, v in self.negative_hours_by_group.items()},
            "keywords": self.keywords,
            "keywords_by_group": self.keywords_by_group,
            "low_confidence": self.low_confidence,
            **({"real_negatives": self.real_negatives} if self.real_negatives else {}),
        }

    def to_dict(self) -> dict:
        return {
            **self.to_meta(),
            "points": [asdict(p) for p in self.points],
            "curve": self.curve,
            "other_bases": self.other_bases,
        }


def _rule(cfg: CalibrationConfig, threshold: float) -> DecisionConfig:
    return DecisionConfig(float(threshold), cfg.smoothing_frames, cfg.refractory_s)


def fa_per_hour(negatives: list[ScoredStream], cfg: CalibrationConfig, threshold: float) -> tuple[float, int]:
    """(false accepts per hour, false accepts) on ``negatives`` at ``threshold``."""
    out = evaluate(negatives, _rule(cfg, threshold), cfg.tolerance_s)
    return out.fa_per_hour, out.false_accepts


def lowest_threshold(negatives: list[ScoredStream], cfg: CalibrationConfig, target: float) -> tuple[float, bool]:
    """(threshold, met): the operating point of :func:`train.metrics.operating_index` on a grid,
    refined by bisection between the last failing and the first meeting grid point.

    When even the top of the grid does not meet it, returns the top and ``False``.
    """
    grid = 1.0 / (1.0 + np.exp(-GRID_LOGITS))
    fa = np.array([fa_per_hour(negatives, cfg, t)[0] for t in grid])
    i = operating_index(fa, target)
    if i is None:
        return float(grid[-1]), False
    if i == 0 or fa[i - 1] <= target + 1e-12:  # nothing below to refine against (degenerate region)
        return float(grid[i]), True
    lo, hi = GRID_LOGITS[i - 1], GRID_LOGITS[i]  # fails at lo, meets at hi
    for _ in range(BISECT_STEPS):
        mid = (lo + hi) / 2
        if fa_per_hour(negatives, cfg, 1.0 / (1.0 + np.exp(-mid)))[0] <= target + 1e-12:
            hi = mid
        else:
            lo = mid
    return float(1.0 / (1.0 + np.exp(-hi))), True


def _miss_rates(
    positives: dict[str, list[ScoredStream]], cfg: CalibrationConfig, threshold: float
) -> tuple[float, dict]:
    keywords = hits = 0
    by_group = {}
    for group, streams in positives.items():
        out = evaluate(streams, _rule(cfg, threshold), cfg.tolerance_s)
        by_group[group] = out.miss_rate
        keywords, hits = keywords + out.keywords, hits + out.hits
    return (1.0 - hits / keywords if keywords else float("nan")), by_group


def calibrate(
    negatives: dict[str, list[ScoredStream]],
    positives: dict[str, list[ScoredStream]],
    cfg: CalibrationConfig = CalibrationConfig(),
    basis: tuple = (),
) -> Calibration:
    """Choose a threshold per target FA/h on ``negatives`` and measure misses on ``positives``.

    Both map a group name (e.g. ``"speech"``, ``"noise"``; ``"clean"``, ``"noisy 10 dB"``) to
    scored streams. Negative streams must not contain the keyword. ``basis``: the negative
    groups the thresholds are chosen on (default: all); false accepts per hour are still
    measured on every group.
    """
    unknown = sorted(set(basis) - set(negatives))
    if unknown:
        raise ValueError(f"calibration basis names groups without streams: {', '.join(unknown)}")
    negs = [s for group in (basis or negatives) for s in negatives[group]]
    if not negs:
        raise ValueError("calibration needs negative streams")
    hours_by_group = {g: sum(s.duration_s for s in ss) / 3600 for g, ss in negatives.items()}
    hours = sum(hours_by_group[g] for g in (basis or negatives))
    points = []
    for target in (cfg.target_fa_per_hour, *cfg.extra_targets_fa_per_hour):
        thr, met = lowest_threshold(negs, cfg, target)
        fa_h, fas = fa_per_hour(negs, cfg, thr)
        miss, miss_by_group = _miss_rates(positives, cfg, thr)
        by_group = {g: fa_per_hour(ss, cfg, thr)[0] for g, ss in negatives.items() if ss}
        points.append(OperatingPoint(target, thr, fa_h, fas, miss, miss_by_group, met, by_group))
        log.info(
            "target %g FA/h: threshold %.4f, %d false accepts in %.2f h%s, miss rate %.3f",
            target,
            thr,
            fas,
            hours,
            f" of {' + '.join(basis)}" if basis else "",
            miss,
        )
    low = hours < cfg.min_negative_hours
    if low:
        log.warning(
            "only %.2f h of negative audio to calibrate on (want >= %g h): thresholds are low-confidence",
            hours,
            cfg.min_negative_hours,
        )
    keywords_by_group = {g: sum(len(s.keyword_spans) for s in ss) for g, ss in positives.items()}
    return Calibration(
        cfg,
        points,
        sum(hours_by_group.values()),
        hours_by_group,
        sum(keywords_by_group.values()),
        keywords_by_group,
        low,
        _curve(negs, positives, cfg),
        tuple(basis),
    )


def _curve(negatives: list[ScoredStream], positives: dict[str, list[ScoredStream]], cfg: CalibrationConfig) -> dict:
    """FA/h and miss rate over a coarse grid, for the DET plot and the report table."""
    grid = 1.0 / (1.0 + np.exp(-GRID_LOGITS[::3]))
    fa = [fa_per_hour(negatives, cfg, t)[0] for t in grid]
    miss = [_miss_rates(positives, cfg, t)[0] for t in grid]
    return {"thresholds": grid.tolist(), "fa_per_hour": fa, "miss_rate": miss}
