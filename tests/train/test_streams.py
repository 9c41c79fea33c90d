"""Evaluation streams: layout, spans, SNR, determinism and the cache."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

from device.params import AudioParams
from train.streams import Clip, StreamConfig, cache_key, cached, negative_streams, positive_streams, speech_span_s

P = AudioParams()
SR = P.sample_rate


def _burst_clip(k: int, seconds: float = 1.5) -> Clip:
    """Quiet noise with a 0.5 s chirp-ish burst at a known place."""
    rng = np.random.default_rng(k)
    audio = (rng.standard_normal(int(seconds * SR)) * 1e-3).astype(np.float32)
    start_s = 0.3 + 0.1 * (k % 4)
    t = np.arange(int(0.5 * SR)) / SR
    a = int(start_s * SR)
    audio[a : a + len(t)] += (0.2 * np.sin(2 * np.pi * (400 + 100 * k) * t)).astype(np.float32)
    return Clip(audio, (start_s, start_s + 0.5), f"c{k}")


def _noise() -> list[np.ndarray]:
    rng = np.random.default_rng(99)
    return [rng.standard_normal(3 * SR).astype(np.float32) * 0.1, rng.standard_normal(2 * SR).astype(np.float32)]


def test_positive_streams_place_each_clip_at_its_span():
    clips = [_burst_clip(k) for k in range(7)]
    cfg = StreamConfig(keywords_per_stream=3)
    streams = positive_streams(clips, P, cfg, group="g")
    assert [len(s.keyword_spans) for s in streams] == [3, 3, 1]
    assert all(s.group == "g" and s.positive for s in streams)
    k = 0
    for s in streams:
        previous_end = 0.0
        for start_s, end_s in s.keyword_spans:
            clip = clips[k]
            offset = round((start_s - clip.span_s[0]) * SR)
            np.testing.assert_array_equal(s.audio[offset : offset + len(clip.audio)], clip.audio)
            # the whole take is set apart (a real take says more than its keyword)
            assert s.ignore_spans[k % 3] == pytest.approx((offset / SR, (offset + len(clip.audio)) / SR))
            assert start_s - previous_end >= cfg.lead_in_min_s  # clip start after its lead-in
            previous_end = end_s
            k += 1
        assert len(s.audio) / SR >= s.keyword_spans[-1][1] + cfg.tail_s


def test_noisy_condition_puts_every_clip_at_the_requested_snr():
    clips = [_burst_clip(k) for k in range(5)]
    clips[2] = Clip(clips[2].audio * 0.1, clips[2].span_s, "quiet")  # 20 dB quieter: its noise must follow
    cfg = StreamConfig(keywords_per_stream=5)
    clean = positive_streams(clips, P, cfg, seed=4)[0]
    noisy = positive_streams(clips, P, cfg, _noise(), snr_db=10.0, seed=4)[0]
    noise = noisy.audio - clean.audio
    for start_s, end_s in clean.keyword_spans:
        a, b = int(start_s * SR), int(end_s * SR)
        snr = 10 * np.log10(np.mean(clean.audio[a:b] ** 2) / np.mean(noise[a:b] ** 2))
        assert snr == pytest.approx(10.0, abs=1.0)


def test_streams_are_deterministic_for_a_seed():
    clips = [_burst_clip(k) for k in range(4)]
    cfg = StreamConfig(keywords_per_stream=2, negative_stream_s=2.0)
    a = positive_streams(clips, P, cfg, _noise(), 10.0)
    b = positive_streams(clips, P, cfg, _noise(), 10.0)
    c = positive_streams(clips, P, StreamConfig(keywords_per_stream=2, seed=7), _noise(), 10.0)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.audio, y.audio)
        assert x.keyword_spans == y.keyword_spans
    assert a[0].keyword_spans != c[0].keyword_spans


def test_negative_streams_keep_every_clip_and_reach_the_target_length():
    clips = [Clip(_burst_clip(k).audio, None, f"n{k}") for k in range(10)]
    cfg = StreamConfig(negative_stream_s=4.0)
    streams = negative_streams(clips, P, cfg, _noise(), 10.0, group="neg")
    assert all(not s.positive and s.group == "neg" for s in streams)
    assert all(len(s.audio) >= 4.0 * SR for s in streams[:-1])
    total_clip = sum(len(c.audio) for c in clips)
    total = sum(len(s.audio) for s in streams)
    assert total_clip + 10 * cfg.gap_min_s * SR <= total <= total_clip + 10 * cfg.gap_max_s * SR + 10


def test_speech_span_finds_the_burst():
    clip = _burst_clip(1)
    start, end = speech_span_s(clip.audio, P)
    assert start == pytest.approx(clip.span_s[0], abs=0.03) and end == pytest.approx(clip.span_s[1], abs=0.03)


def test_cache_builds_once_and_loads_the_same_streams(tmp_path):
    clips = [dataclasses.replace(_burst_clip(k), speaker=f"p{k % 2}") for k in range(3)]
    cfg = StreamConfig(keywords_per_stream=2)
    calls = []

    def build():
        calls.append(1)
        return positive_streams(clips, P, cfg, _noise(), 10.0, group="x")

    key = cache_key(cfg=cfg, params=P, names=[c.name for c in clips])
    first = cached(tmp_path, "pos", key, build)
    second = cached(tmp_path, "pos", key, build)
    assert len(calls) == 1
    for a, b in zip(first, second):
        # the very samples later runs load (16-bit PCM): anything keyed by the audio matches
        np.testing.assert_array_equal(a.audio, b.audio)
        assert a.keyword_spans == b.keyword_spans and a.group == b.group and a.name == b.name
        assert a.ignore_spans == b.ignore_spans and len(a.ignore_spans) == len(a.keyword_spans)
        assert a.speakers == b.speakers
    assert [b.speakers for b in second] == [["p0", "p1"], ["p0"]]  # who said each keyword, in order
    assert cache_key(cfg=StreamConfig(keywords_per_stream=3), params=P, names=["c0"]) != key


def test_cache_keeps_the_most_recently_used_files_of_each_name(tmp_path):
    """Every other exclusion or setting keys a new file of hundreds of MB: the oldest go, the
    one just loaded stays, and other names and foreign files are never touched."""
    clips = [_burst_clip(k) for k in range(2)]
    calls = []

    def build():
        calls.append(1)
        return positive_streams(clips, P, StreamConfig(keywords_per_stream=2), _noise(), None, group="x")

    keys = [f"{k:016x}" for k in range(1, 6)]
    other = tmp_path / "neg-00000000000000aa.npz"
    foreign = tmp_path / "pos-notes.npz"
    for f in (other, foreign):
        f.write_bytes(b"keep me")
    for age, k in enumerate(keys[:3]):
        cached(tmp_path, "pos", k, build)
        os.utime(tmp_path / f"pos-{k}.npz", ns=(10**18 + age, 10**18 + age))  # an order of use, in the past
    cached(tmp_path, "pos", keys[0], build)  # loaded again: now the most recently used
    assert len(calls) == 3
    cached(tmp_path, "pos", keys[3], build)
    assert sorted(p.name for p in tmp_path.glob("pos-0*.npz")) == [f"pos-{k}.npz" for k in (keys[0], keys[2], keys[3])]
    cached(tmp_path, "pos", keys[4], build)
    assert sorted(p.name for p in tmp_path.glob("pos-0*.npz")) == [f"pos-{k}.npz" for k in (keys[0], keys[3], keys[4])]
    assert other.read_bytes() == b"keep me" and foreign.read_bytes() == b"keep me"
    assert len(calls) == 5
