"""Detection latency: from the end of the spoken keyword to the detection, and to the LED edge.

The keyword's end is where its speech ends in the clean clip, by energy
(:func:`train.streams.speech_span_s`, the span every positive stream carries). Three figures:

- *frame latency*: end of the output frame that fired minus the keyword end -- what the model
  itself needs (it cannot fire before it has heard enough);
- *event latency*: end of the inference step that reported the detection minus the keyword end
  -- a live daemon steps when a step's audio has arrived, so this is the delay a user sees, up to
  the step's compute time (the cost table); it shrinks with smaller steps;
- *LED latency*: the fake GPIO backend's logged rising edge (``time.monotonic``) minus the moment
  the keyword's end was played, with the WAV paced at 1x (``--realtime``): the whole live path
  (queue, tick, model, decision, indicator thread).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

T0_PATTERN = re.compile(r"stream time 0 = monotonic ([0-9.]+) s")


@dataclass(frozen=True)
class Summary:
    n: int
    median_s: float
    p95_s: float
    mean_s: float

    @staticmethod
    def of(values_s: list[float]) -> Summary:
        if not values_s:
            return Summary(0, float("nan"), float("nan"), float("nan"))
        v = np.asarray(values_s, float)
        return Summary(len(v), float(np.median(v)), float(np.percentile(v, 95)), float(v.mean()))


def first_in_window(spans: list[tuple[float, float]], times_s: list[float], tolerance_s: float) -> list[int | None]:
    """For each keyword span, the index of the first time in ``[start, end + tolerance_s]`` (None: none)."""
    order = np.argsort(times_s) if times_s else np.zeros(0, int)
    ts = np.asarray(times_s, float)[order] if times_s else np.zeros(0)
    out: list[int | None] = []
    for start, end in spans:
        i = int(np.searchsorted(ts, start - 1e-9))
        out.append(int(order[i]) if i < len(ts) and ts[i] <= end + tolerance_s + 1e-9 else None)
    return out


def keyword_latencies(
    spans: list[tuple[float, float]], detection_s: list[float], reported_s: list[float], tolerance_s: float
) -> tuple[list[float], list[float]]:
    """(frame latencies, event latencies) in s of every keyword that was hit."""
    frame, event = [], []
    for (_start, end), k in zip(spans, first_in_window(spans, detection_s, tolerance_s)):
        if k is not None:
            frame.append(detection_s[k] - end)
            event.append(reported_s[k] - end)
    return frame, event


def read_t0(stderr_text: str) -> float | None:
    """Stream time 0 of a ``--realtime`` run, in ``time.monotonic`` seconds (from its log)."""
    m = T0_PATTERN.search(stderr_text)
    return float(m.group(1)) if m else None


def read_edges(edge_log: Path, level_on: int = 1) -> list[float]:
    """Monotonic times of the edges to ``level_on`` in a fake GPIO edge log (``<t> <pin> <level>``);
    the initial "off" write at start-up is not an edge and is skipped by level."""
    out: list[float] = []
    if not edge_log.is_file():
        return out
    for line in edge_log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and int(parts[2]) == level_on:
            out.append(float(parts[0]))
    return out


def led_latencies(
    spans: list[tuple[float, float]], edges_mono: list[float], t0_mono: float, window_s: float
) -> list[float]:
    """LED-on latency per keyword whose edge came within ``window_s`` after its end (s)."""
    rel = [t - t0_mono for t in edges_mono]
    out = []
    for (_start, end), k in zip(spans, first_in_window(spans, rel, window_s)):
        if k is not None:
            out.append(rel[k] - end)
    return out
