"""The benchmark's test audio: deterministic for a seed, cached, spans where the keywords are."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from bench import testsets
from bench.tonemodel import TONE_HZ
from device.params import AudioParams
from tests.bench.benchhelpers import tone_sets

PARAMS = AudioParams()


def _read(t):
    audio, rate = sf.read(str(t.wav), dtype="int16")
    assert rate == PARAMS.sample_rate and audio.ndim == 1
    return audio


def test_same_seed_same_audio_other_seed_other_audio(tmp_path):
    a = tone_sets(tmp_path / "a", PARAMS, seed=5)
    b = tone_sets(tmp_path / "b", PARAMS, seed=5)
    c = tone_sets(tmp_path / "c", PARAMS, seed=6)
    assert [t.spec for t in a] == [t.spec for t in b]
    for x, y in zip(a, b):
        assert x.wav.read_bytes() == y.wav.read_bytes() and x.spans == y.spans
    assert any(x.wav.read_bytes() != z.wav.read_bytes() for x, z in zip(a, c))


def test_second_build_is_read_from_the_cache(tmp_path):
    first = tone_sets(tmp_path, PARAMS)
    stamps = {t.wav: t.wav.stat().st_mtime_ns for t in first}
    again = testsets.materialize(tmp_path, "tone0", {}, lambda: iter(()), PARAMS.sample_rate)  # nothing to build with
    assert [t.wav for t in again] == [t.wav for t in first]
    assert {t.wav: t.wav.stat().st_mtime_ns for t in again} == stamps


def test_spans_mark_the_keywords_in_the_joined_wav(tmp_path):
    for t in tone_sets(tmp_path, PARAMS):
        audio = _read(t).astype(np.float32) / 32768
        assert abs(len(audio) / PARAMS.sample_rate - t.duration_s) < 1e-6
        if not t.spec.positive:
            assert t.spans == ()
            continue
        assert len(t.spans) == 6 and t.streams == 2  # 3 keywords per stream
        assert all(b[0] > a[1] + 1.0 for a, b in zip(t.spans, t.spans[1:]))  # lead-in and tail between
        for start, end in t.spans:  # the 1 kHz burst is inside each span and not just before it
            inside = audio[int(start * PARAMS.sample_rate) : int(end * PARAMS.sample_rate)]
            before = audio[int((start - 0.4) * PARAMS.sample_rate) : int(start * PARAMS.sample_rate)]
            tone = np.sin(2 * np.pi * TONE_HZ * np.arange(len(inside)) / PARAMS.sample_rate)
            assert abs(np.dot(inside, tone)) / len(inside) > 0.02
            assert np.sqrt(np.mean(before**2)) < 0.5 * np.sqrt(np.mean(inside**2))


def test_noisy_condition_is_noisier_between_keywords(tmp_path):
    sets = {(t.spec.condition, t.spec.positive): t for t in tone_sets(tmp_path, PARAMS)}
    clean, noisy = _read(sets["clean", True]), _read(sets["10 dB", True])
    first_start = int(sets["clean", True].spans[0][0] * PARAMS.sample_rate)
    assert np.std(noisy[:first_start]) > 5 * np.std(clean[:first_start])


def test_pick_evenly_is_deterministic_and_spread():
    items = list(range(100))
    assert testsets.pick_evenly(items, 0) == items
    assert testsets.pick_evenly(items, 500) == items
    assert testsets.pick_evenly(items, 5) == [0, 25, 50, 74, 99]
