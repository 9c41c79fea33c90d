"""Placement and labels (train.synth): properties over arbitrary clip and utterance lengths."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from device.params import AudioParams
from train import synth

PARAMS = AudioParams()

items_st = st.lists(st.tuples(st.integers(1, 5000), st.integers(0, 6000)), max_size=25)


@settings(max_examples=300, deadline=None)
@given(clip=st.integers(1, 20000), items=items_st, seed=st.integers(0, 2**32 - 1))
def test_placement_terminates_never_overlaps_and_stays_inside(clip, items, seed):
    items = [synth.Item(length, room) for length, room in items]
    placement = synth.place(clip, items, np.random.default_rng(seed))  # returning at all = terminated
    assert len(placement.starts) == len(items)
    spans = []
    for item, start in zip(items, placement.starts):
        if start is None:
            continue
        assert 0 <= start and start + item.length <= clip
        assert start + item.needed <= clip  # a keyword's label window fits after it
        spans.append((start, start + item.length))
    spans.sort()
    for (a0, a1), (b0, b1) in zip(spans, spans[1:]):
        assert a1 <= b0, f"overlap: {(a0, a1)} and {(b0, b1)}"
    assert placement.skipped == sum(s is None for s in placement.starts)


@settings(max_examples=200, deadline=None)
@given(clip=st.integers(100, 20000), items=items_st, seed=st.integers(0, 2**32 - 1))
def test_an_item_is_skipped_only_when_it_fits_nowhere(clip, items, seed):
    """Skips are not bad luck: when an item is skipped, no free gap could hold it."""
    items = [synth.Item(length, room) for length, room in items]
    placement = synth.place(clip, items, np.random.default_rng(seed))
    occupied: list[tuple[int, int]] = []
    for item, start in zip(items, placement.starts):
        if start is None:
            latest = clip - item.needed
            bounds = sorted(occupied) + [(clip, clip)]
            gap_start = 0
            for a, b in bounds:
                assert min(a - item.length, latest) < gap_start, "a fitting gap existed"
                gap_start = max(gap_start, b)
        else:
            occupied.append((start, start + item.length))


@settings(max_examples=200, deadline=None)
@given(ends=st.lists(st.integers(1, 50000), max_size=6), extra=st.integers(0, 3000))
def test_labels_are_the_window_after_each_keyword_end(ends, extra):
    n_frames = PARAMS.frames_for(max(ends, default=0) + extra + 1)
    labels = synth.keyword_labels(ends, n_frames, PARAMS)
    assert labels.dtype == np.uint8 and labels.shape == (n_frames,)
    expected = np.zeros(n_frames, dtype=bool)
    hop, window = PARAMS.output_hop_samples, PARAMS.label_window_frames
    for end in ends:
        for t in range(n_frames):
            # output frame t covers samples up to (t + 1) * hop: positive from the first frame that has heard
            # the keyword's last sample (end - 1), for label_window_frames frames
            first = (end - 1) // hop
            if first <= t < first + window:
                expected[t] = True
    assert np.array_equal(labels.astype(bool), expected)


def test_labels_for_a_known_case():
    # keyword ends at 1.6 s exactly = sample 25600 = the end of 80 ms frame 19: frames 19..23 are positive
    labels = synth.keyword_labels([25600], 100, PARAMS)
    assert labels[18] == 0 and labels[19] == 1 and labels[19 + PARAMS.label_window_frames - 1] == 1
    assert labels[19 + PARAMS.label_window_frames] == 0
    assert labels.sum() == PARAMS.label_window_frames == 5


def test_clip_samples_are_whole_output_frames():
    n = synth.clip_samples_for(10.0, PARAMS)
    assert n == 160000 and n % PARAMS.output_hop_samples == 0  # 125 frames of 80 ms
    assert synth.clip_samples_for(1.0101, PARAMS) % PARAMS.output_hop_samples == 0
