"""Clip placement and per-frame labels: pure functions over integers and arrays.

Placement puts utterances at random, non-overlapping positions in a clip. It never retries:
each utterance draws its start uniformly from the positions that still fit in the free
intervals left by the ones placed before it, or is skipped (and counted) when none fits. So
it always terminates, after one pass over the utterances.

Labels follow the model's output framing (``train.frontend``): output frame ``t`` ends at
sample ``(t + 1) * output_hop_samples`` (80 ms frames). A keyword whose last sample is
``end - 1`` is complete in frame ``t0 = ceil(end / output_hop) - 1``; frames
``t0 .. t0 + label_window_frames - 1`` are 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from device.params import AudioParams


@dataclass(frozen=True)
class Item:
    """One utterance to place, in samples."""

    length: int
    """Samples it occupies exclusively (its audio, including any reverb tail)."""
    room: int = 0
    """Samples it needs from its start to the end of the clip (at least ``length``); a keyword
    needs its label window to fit after it, so its room is ``dry length + label window``."""

    @property
    def needed(self) -> int:
        return max(self.length, self.room)


@dataclass(frozen=True)
class Placement:
    starts: tuple[int | None, ...]
    """Start sample of each item, in the order given; None where it did not fit."""

    @property
    def skipped(self) -> int:
        return sum(s is None for s in self.starts)


def place(clip_samples: int, items: Sequence[Item], rng: np.random.Generator) -> Placement:
    """Place ``items`` (in order) at uniformly random non-overlapping starts in ``[0, clip_samples)``.

    An item fits at start ``s`` when ``[s, s + length)`` lies in one free interval and
    ``s + needed <= clip_samples``. Items that fit nowhere are skipped (start None).
    """
    free: list[tuple[int, int]] = [(0, clip_samples)]  # half-open, disjoint, sorted
    starts: list[int | None] = []
    for item in items:
        if item.length <= 0:
            raise ValueError(f"item length must be positive, got {item.length}")
        latest = clip_samples - item.needed  # last start allowed by the room it needs
        # For each free interval, the range of starts that fit: [a, min(b - length, latest)].
        ranges = [(a, min(b - item.length, latest)) for a, b in free]
        ranges = [(lo, hi) for lo, hi in ranges if hi >= lo]
        if not ranges:
            starts.append(None)
            continue
        sizes = np.array([hi - lo + 1 for lo, hi in ranges], dtype=np.float64)
        k = int(rng.choice(len(ranges), p=sizes / sizes.sum()))
        lo, hi = ranges[k]
        start = int(rng.integers(lo, hi + 1))
        starts.append(start)
        free = _occupy(free, start, start + item.length)
    return Placement(tuple(starts))


def _occupy(free: list[tuple[int, int]], start: int, end: int) -> list[tuple[int, int]]:
    """Remove ``[start, end)`` (which lies inside one free interval) from ``free``."""
    out = []
    for a, b in free:
        if a <= start and end <= b:
            if a < start:
                out.append((a, start))
            if end < b:
                out.append((end, b))
        else:
            out.append((a, b))
    return out


def label_start_frame(end_sample: int, params: AudioParams) -> int:
    """The first output frame that has heard a keyword ending (exclusive) at ``end_sample``."""
    hop = params.output_hop_samples
    return max(0, -(-end_sample // hop) - 1)


def keyword_labels(end_samples: Sequence[int], n_frames: int, params: AudioParams) -> np.ndarray:
    """uint8 ``[n_frames]``: 1 for ``label_window_frames`` frames from each keyword's end frame.

    ``end_samples`` are exclusive keyword ends in clip samples. Windows are clipped at the
    clip's end; overlapping windows simply stay 1.
    """
    labels = np.zeros(n_frames, dtype=np.uint8)
    for end in end_samples:
        t0 = label_start_frame(int(end), params)
        labels[t0 : t0 + params.label_window_frames] = 1
    return labels


def clip_samples_for(clip_s: float, params: AudioParams) -> int:
    """Samples in a clip of ``clip_s`` seconds, rounded down to whole model output frames."""
    step = params.output_hop_samples
    n = int(round(clip_s * params.sample_rate)) // step * step
    if n <= 0:
        raise ValueError(f"clip length {clip_s} s is shorter than one output frame")
    return n
