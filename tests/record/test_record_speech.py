"""Finding and trimming the spoken part of a take (device/speech.py): properties on synthetic
speech in noise, where the true edges are known."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device.params import AudioParams
from device.speech import Endpointer, Span, SpeechConfig, find_speech, frame_db, trim
from tests.record.record_synth import speech_in_noise

SR = AudioParams().sample_rate
CFG = SpeechConfig()
# Edges land on frame boundaries, and the raised-cosine onset/offset of a syllable is
# below the threshold for its first few ms: allow a frame plus the ramp either way.
EDGE_TOL_S = CFG.frame_ms / 1000 + 0.025

syllables = st.lists(st.tuples(st.floats(0.1, 0.35), st.floats(0.0, 0.25)), min_size=1, max_size=4)
takes = st.fixed_dictionaries(
    {
        "seed": st.integers(0, 2**32 - 1),
        "lead_s": st.floats(0.3, 1.2),
        "syllables": syllables,
        "tail_s": st.floats(0.5, 1.2),
        "speech_dbfs": st.floats(-35.0, -10.0),
        "snr_db": st.floats(20.0, 45.0),
    }
)


def make(take: dict) -> tuple[np.ndarray, float, float]:
    rng = np.random.default_rng(take["seed"])
    return speech_in_noise(
        rng, SR, take["lead_s"], take["syllables"], take["tail_s"], take["speech_dbfs"], take["snr_db"]
    )


@settings(max_examples=60, deadline=None)
@given(takes)
def test_span_matches_the_spoken_part(take):
    audio, start_s, end_s = make(take)
    span = find_speech(audio, SR, CFG)
    assert span is not None
    got_start, got_end = span.seconds(SR)
    assert abs(got_start - start_s) <= EDGE_TOL_S, (got_start, start_s)
    assert abs(got_end - end_s) <= EDGE_TOL_S, (got_end, end_s)


@settings(max_examples=30, deadline=None)
@given(takes, st.floats(-20.0, 0.0))
def test_span_does_not_depend_on_gain(take, gain_db):
    audio, _, _ = make(take)
    quieter = (audio * 10 ** (gain_db / 20)).astype(np.float32)
    if take["speech_dbfs"] + gain_db - take["snr_db"] < CFG.min_level_dbfs + 1:
        return  # the noise would sink under the digital-silence floor: a different regime
    assert find_speech(quieter, SR, CFG) == find_speech(audio, SR, CFG)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.floats(-90.0, -10.0), st.floats(0.5, 4.0))
def test_noise_alone_has_no_speech(seed, noise_dbfs, duration_s):
    rng = np.random.default_rng(seed)
    noise = (rng.standard_normal(round(duration_s * SR)) * 10 ** (noise_dbfs / 20)).astype(np.float32)
    assert find_speech(noise, SR, CFG) is None


def test_silence_and_empty_input_have_no_speech():
    assert find_speech(np.zeros(SR, np.float32), SR, CFG) is None
    assert find_speech(np.zeros(0, np.float32), SR, CFG) is None


@settings(max_examples=20, deadline=None)
@given(takes, st.floats(0.5, 1.0))
def test_a_click_well_before_the_word_is_ignored(take, click_lead_s):
    """A key press before speaking: 5 ms at full scale, more than ``merge_gap_ms`` ahead."""
    take = dict(take, lead_s=take["lead_s"] + click_lead_s + CFG.merge_gap_ms / 1000)
    audio, start_s, end_s = make(take)
    click_at = round(0.1 * SR)
    audio[click_at : click_at + round(0.005 * SR)] = 0.9
    span = find_speech(audio, SR, CFG)
    assert span is not None and abs(span.seconds(SR)[0] - start_s) <= EDGE_TOL_S


@settings(max_examples=30, deadline=None)
@given(takes)
def test_trim_keeps_the_span_plus_padding(take):
    audio, _, _ = make(take)
    span = find_speech(audio, SR, CFG)
    cut, offset = trim(audio, span, SR, CFG)
    pad = round(CFG.pad_ms * SR / 1000)
    assert offset == max(0, span.start - pad)
    assert len(cut) == min(len(audio), span.end + pad) - offset
    np.testing.assert_array_equal(cut, audio[offset : offset + len(cut)])
    assert find_speech(cut, SR, CFG) is not None


def test_trim_clips_padding_at_the_edges():
    audio = np.arange(1000, dtype=np.float32)
    cut, offset = trim(audio, Span(10, 990), SR, CFG)
    assert offset == 0 and len(cut) == 1000


@settings(max_examples=25, deadline=None)
@given(takes, st.lists(st.integers(1, 4000), min_size=1, max_size=8))
def test_endpointer_is_chunking_invariant_and_ends_after_the_speech(take, block_sizes):
    """Same decisions at the same frames whatever the block size; it starts within the speech and
    ends ``end_silence_ms`` after it."""
    audio, start_s, end_s = make(take)
    floor = float(np.percentile(frame_db(audio, SR, CFG), CFG.noise_percentile))
    decisions = []
    for sizes in ([len(audio)], block_sizes):
        ep, pos, i = Endpointer(floor, SR, CFG), 0, 0
        while pos < len(audio):
            n = sizes[i % len(sizes)]
            ep.feed(audio[pos : pos + n])
            pos, i = pos + n, i + 1
        decisions.append((ep.started_frame, ep.ended_frame))
    assert decisions[0] == decisions[1]
    started, ended = decisions[0]
    frame_s = CFG.frame_ms / 1000
    assert started is not None and start_s <= started * frame_s <= start_s + CFG.min_speech_ms / 1000 + EDGE_TOL_S
    if ended is not None:  # the tail is not always long enough to hold the end silence
        assert ended * frame_s == pytest.approx(end_s + CFG.end_silence_ms / 1000, abs=EDGE_TOL_S)
    else:
        assert len(audio) / SR - end_s < CFG.end_silence_ms / 1000 + EDGE_TOL_S


def test_endpointer_never_starts_on_noise():
    rng = np.random.default_rng(1)
    noise = (rng.standard_normal(3 * SR) * 0.01).astype(np.float32)
    floor = float(np.percentile(frame_db(noise, SR, CFG), CFG.noise_percentile))
    ep = Endpointer(floor, SR, CFG)
    ep.feed(noise)
    assert not ep.started and not ep.ended


def test_config_rejects_an_end_silence_shorter_than_a_word_pause():
    with pytest.raises(ValueError, match="end_silence_ms"):
        SpeechConfig(end_silence_ms=100.0, merge_gap_ms=400.0)
