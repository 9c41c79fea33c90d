"""The benchmark's test audio: deterministic for a seed, cached, spans where the keywords are."""

from __future__ import annotations

import os

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


def test_a_copied_cache_reads_its_own_files(tmp_path):
    """The cache names its files relative to its folder: a build folder copied elsewhere (and the
    original deleted) still loads without rebuilding."""
    import shutil

    first = tone_sets(tmp_path / "a", PARAMS)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    again = testsets.materialize(tmp_path / "b", "tone0", {}, lambda: iter(()), PARAMS.sample_rate)
    assert [t.wav for t in again] == [tmp_path / "b" / t.wav.name for t in first]


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


def test_real_takes_say_who_said_them(tmp_path, monkeypatch):
    """Each real keyword in the bench's WAVs keeps its speaker (the intervals draw speakers), in
    the order of its span, through the sidecar and the cache; a take of no known speaker is its own."""
    from bench.config import BenchConfig
    from train import realdata
    from train.streams import StreamConfig

    root = tmp_path / "shared"
    rows = ["path,label,source,license,speaker"]
    t = np.arange(PARAMS.sample_rate // 2) / PARAMS.sample_rate
    word = np.concatenate([np.zeros(4000), 0.3 * np.sin(2 * np.pi * 440 * t), np.zeros(4000)]).astype(np.float32)
    for rel, label, who in [
        ("wake/a1.wav", "positive", "ann"),
        ("wake/a2.wav", "positive", "ann"),
        ("wake/b1.wav", "positive", "bob"),
        ("wake/u1.wav", "positive", "unknown"),
        ("negatives/n1.wav", "negative_speech", "cy"),
        ("noise/fan.wav", "noise", "none"),
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(root / rel), word if label == "positive" else np.full(16000, 0.01, np.float32), PARAMS.sample_rate)
        rows.append(f"{rel},{label},x,PD,{who}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    monkeypatch.setenv(realdata.ENV_VAR, str(root))
    cfg = StreamConfig(keywords_per_stream=3, negative_stream_s=5.0)
    want = ("ann", "ann", "bob", "unknown:wake/u1.wav")  # the takes in path order, the spans too
    for _ in range(2):  # built, then read from the cache
        sets = testsets.real_sets("wake", PARAMS, cfg, BenchConfig(), tmp_path / "out")
        positives = [s for s in sets if s.spec.positive]
        assert len(positives) == 2 and all(s.speakers == want and len(s.spans) == 4 for s in positives)
        assert all(s.speakers == () for s in sets if not s.spec.positive)


def test_only_the_most_recently_used_keys_keep_their_audio(tmp_path):
    """Each key's test audio is hundreds of MB: beyond the kept number the least recently used
    key's WAVs and sidecars go, whole, and a key that was just read again stays."""
    for k in range(3):
        tone_sets(tmp_path, PARAMS, seed=k)
        os.utime(tmp_path / f"complete-tone{k}.json", ns=(10**18 + k, 10**18 + k))  # an order of use
    testsets.materialize(tmp_path, "tone0", {}, lambda: iter(()), PARAMS.sample_rate)  # read: now the newest
    testsets.prune_keys(tmp_path, keep=2)
    left = {p.name.rsplit("-", 1)[1].split(".")[0] for p in tmp_path.iterdir()}
    assert left == {"tone0", "tone2"}
    kept = testsets.materialize(tmp_path, "tone2", {}, lambda: iter(()), PARAMS.sample_rate)
    assert len(kept) == 4 and all(t.wav.is_file() for t in kept)
