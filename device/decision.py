"""Turning per-frame keyword probabilities into detections: threshold, smoothing, refractory.

Pure logic over arrays, no I/O. The rule, per output frame ``t`` (time = end of the frame):

1. ``s[t]`` = mean of the last ``smoothing_frames`` probabilities (causal moving average);
2. the detector is *armed* at start and whenever ``s[t] < threshold``;
3. it fires at ``t`` when armed, ``s[t] >= threshold`` and at least ``refractory_s`` has passed since
   the previous detection; firing disarms it.

So one spoken keyword gives one detection, and a score that stays high gives no repeats.
:class:`Decider` applies the rule incrementally (the daemon); :func:`detect` applies the
identical rule to a whole score array at once (benchmarks and threshold sweeps), fast.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

DEFAULT_SMOOTHING_FRAMES = 1
DEFAULT_REFRACTORY_S = 2.0
"""The rule's defaults, in one place: what a model is calibrated under unless configured otherwise."""


@dataclass(frozen=True)
class DecisionConfig:
    threshold: float
    """Smoothed probability at or above which the keyword is detected, in (0, 1)."""
    smoothing_frames: int = DEFAULT_SMOOTHING_FRAMES
    """Output frames in the causal moving average (1 = no smoothing)."""
    refractory_s: float = DEFAULT_REFRACTORY_S
    """Minimum time between two detections (s)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.smoothing_frames < 1:
            raise ValueError(f"smoothing_frames must be >= 1, got {self.smoothing_frames}")
        if not 0 <= self.refractory_s < float("inf"):  # also refuses nan, which would never fire
            raise ValueError(f"refractory_s must be a finite number >= 0, got {self.refractory_s}")


@dataclass(frozen=True)
class Detection:
    time_s: float
    """Stream time of the end of the output frame that fired (s)."""
    score: float
    """Smoothed probability at that frame."""
    keyword: str = ""
    """Which keyword fired (set by the listener when it runs several)."""


class Decider:
    """Incremental form of the rule for a live stream, fed chunk by chunk."""

    def __init__(self, cfg: DecisionConfig, frame_s: float):
        self.cfg = cfg
        self.frame_s = frame_s
        self._last_fire_s = -np.inf
        self.reset()

    def reset(self) -> None:
        """Forget the smoothing history and re-arm (after a model-state reset).

        The refractory clock is kept, so a reset cannot cause a quick repeat detection.
        """
        self._history: deque[float] = deque(maxlen=self.cfg.smoothing_frames)
        self._armed = True

    def feed(self, probs: np.ndarray, start_time_s: float) -> list[Detection]:
        """``probs``: consecutive output-frame probabilities, the first one starting at
        ``start_time_s``. Returns the detections among them, in time order."""
        out = []
        for i, p in enumerate(np.asarray(probs, dtype=np.float64).ravel()):
            self._history.append(float(p))
            score = sum(self._history) / len(self._history)
            t = start_time_s + (i + 1) * self.frame_s
            if score < self.cfg.threshold:
                self._armed = True
            elif self._armed and t - self._last_fire_s >= self.cfg.refractory_s - 1e-9:
                out.append(Detection(t, score))
                self._last_fire_s = t
                self._armed = False
        return out


def smooth(probs: np.ndarray, smoothing_frames: int) -> np.ndarray:
    """Causal moving average; the first frames average over what exists so far."""
    p = np.asarray(probs, dtype=np.float64).ravel()
    if smoothing_frames == 1 or len(p) == 0:
        return p
    # Summed oldest first, as Decider's sum() over its window: the same float at every frame.
    # (A difference of cumulative sums is not: a window of 0.05, 0.05 after two 1.0 gives
    # 0.04999..., and a score sitting exactly on the threshold would re-arm here and not there.)
    k = smoothing_frames
    padded = np.concatenate([np.zeros(k - 1), p])
    total = np.zeros(len(p))
    for j in range(k):
        total += padded[j : j + len(p)]
    return total / np.minimum(np.arange(1, len(p) + 1), k)


def detect(probs: np.ndarray, frame_s: float, cfg: DecisionConfig, start_time_s: float = 0.0) -> list[Detection]:
    """The same rule as :class:`Decider` over a whole score array (one stream, fresh state).

    Works run by run (maximal stretches at or above threshold), so its cost grows with the
    number of runs, not of frames.
    """
    s = smooth(probs, cfg.smoothing_frames)
    above = s >= cfg.threshold
    if not above.any():
        return []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], above.astype(np.int8), [0]])))
    starts, ends = edges[0::2], edges[1::2]  # each run is frames [start, end)
    refractory_frames = cfg.refractory_s / frame_s
    out: list[Detection] = []
    last = None
    for a, b in zip(starts, ends):
        # frame k ends at start_time_s + (k + 1) * frame_s; fire at the first frame of the run
        # whose end is at least refractory_s after the previous detection's end.
        k = a if last is None else max(a, int(np.ceil(last + refractory_frames - 1e-9)))
        if k < b:
            out.append(Detection(start_time_s + (k + 1) * frame_s, float(s[k])))
            last = k
    return out
