"""Saving the audio around detections: the right stretch, a sidecar, atomic files, a disk cap."""

from __future__ import annotations

import json

import numpy as np

from device.clipsaver import ClipSaver, SaveConfig
from device.decision import Detection
from device.wavio import read_mono_float
from tests.device.daemon_helpers import RATE


def ramp(start_s: float, seconds: float) -> np.ndarray:
    """Audio whose value encodes its own stream time (so the saved stretch can be checked)."""
    t = start_s + np.arange(int(seconds * RATE)) / RATE
    return (t / 100).astype(np.float32)


def feed(saver: ClipSaver, start_s: float, seconds: float, step_s: float = 0.5) -> None:
    t = start_s
    while t < start_s + seconds - 1e-9:
        saver.feed(ramp(t, step_s), t)
        t += step_s


def test_saves_pre_and_post_roll_with_a_sidecar(tmp_path):
    saver = ClipSaver(
        SaveConfig(enabled=True, dir=str(tmp_path), pre_roll_s=1.0, post_roll_s=0.5),
        RATE,
        "hey pi",
        model_version="v7",
        threshold=0.6,
    )
    feed(saver, 0.0, 5.0)
    saver.detected(Detection(4.0, 0.93))
    assert list(tmp_path.iterdir()) == []  # waits for the post-roll
    feed(saver, 5.0, 0.5)
    wavs = sorted(tmp_path.glob("*.wav"))
    assert len(wavs) == 1 and wavs[0].name.endswith("_hey_pi.wav")
    audio, rate = read_mono_float(wavs[0])
    assert rate == RATE and len(audio) == int(1.5 * RATE)
    assert abs(audio[0] * 100 - 3.0) < 0.01 and abs(audio[-1] * 100 - 4.5) < 0.01
    meta = json.loads(wavs[0].with_suffix(".json").read_text())
    assert meta["keyword"] == "hey pi" and meta["score"] == 0.93 and meta["model_version"] == "v7"
    assert meta["time_s"] == 4.0 and meta["detected_at_s"] == 1.0 and meta["sample_rate"] == RATE
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_flush_at_end_of_stream_saves_what_exists(tmp_path):
    saver = ClipSaver(SaveConfig(enabled=True, dir=str(tmp_path), pre_roll_s=2.0, post_roll_s=2.0), RATE, "k")
    feed(saver, 0.0, 1.0)
    saver.detected(Detection(0.9, 0.8))
    saver.flush()
    audio, _ = read_mono_float(next(tmp_path.glob("*.wav")))
    assert len(audio) == RATE  # only 1 s existed


def test_disk_cap_deletes_the_oldest_clips(tmp_path):
    one_clip_mb = (RATE * 2 * 2 + 400) / 1e6  # 2 s of 16-bit audio + sidecar
    saver = ClipSaver(
        SaveConfig(enabled=True, dir=str(tmp_path), pre_roll_s=1.0, post_roll_s=1.0, max_mb=3.5 * one_clip_mb),
        RATE,
        "k",
    )
    stems = []
    t = 0.0
    for _ in range(6):
        feed(saver, t, 3.0)
        saver.detected(Detection(t + 3.0, 0.9))
        feed(saver, t + 3.0, 1.0)
        t += 4.0
        stems.append(sorted(p.stem for p in tmp_path.glob("*.wav"))[-1])
    left = sorted(p.stem for p in tmp_path.glob("*.wav"))
    assert saver.saved == 6 and len(left) == 3
    assert left == sorted(stems)[-3:]  # the newest survive
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == left  # pairs go together


def test_a_file_deleted_by_someone_else_during_the_cap_is_no_error(tmp_path, monkeypatch):
    """`make collect` or a reviewer may delete a clip between the listing and the stat."""
    from pathlib import Path

    saver = ClipSaver(
        SaveConfig(enabled=True, dir=str(tmp_path), pre_roll_s=1.0, post_roll_s=1.0, max_mb=0.01), RATE, "k"
    )
    (tmp_path / "00000000T000000Z_k.wav").write_bytes(b"\0" * 20000)
    real_stat = Path.stat

    def vanishing(self, *a, **kw):
        if self.name.startswith("00000000T"):
            self.unlink(missing_ok=True)
            raise FileNotFoundError(self)
        return real_stat(self, *a, **kw)

    monkeypatch.setattr(Path, "stat", vanishing)
    feed(saver, 0.0, 3.0)
    saver.detected(Detection(3.0, 0.9))
    feed(saver, 3.0, 1.0)
    assert saver.saved == 1


def test_wavs_that_end_mid_frame_or_claim_rate_0(tmp_path):
    import struct
    import wave

    import pytest

    from device.wavio import WavError, iter_int16_blocks, wav_info

    path = tmp_path / "odd.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(np.zeros(2 * 1000, "<i2").tobytes())
    with open(path, "ab") as f:  # three stray bytes after the last whole frame
        f.write(b"\x01\x02\x03")
    data = path.read_bytes()
    size = len(data) - 44
    path.write_bytes(data[:40] + struct.pack("<I", size) + data[44:])  # the data chunk claims them
    blocks = list(iter_int16_blocks(path, 256))
    assert sum(n for n, _ in blocks) == 1000 and all(len(b) == 4 * n for n, b in blocks)
    zero = tmp_path / "zero.wav"
    raw = bytearray(path.read_bytes())
    raw[24:28] = struct.pack("<I", 0)  # sample rate 0
    zero.write_bytes(bytes(raw))
    with pytest.raises(WavError, match="0 Hz"):
        wav_info(zero)


# -- room snippets ([snippets]) ------------------------------------------------------------
def slow_feed(keeper, start_s: float, seconds: float, step_s: float = 0.5) -> None:
    """Audio whose value is its stream time / 1000 (so a 15-minute stream stays below full scale)."""
    t = start_s
    while t < start_s + seconds - 1e-9:
        keeper.feed((t + np.arange(int(step_s * RATE)) / RATE).astype(np.float32) / 1000, t)
        t += step_s


def snippets_cfg(tmp_path, **kw):
    from device.clipsaver import SnippetConfig

    return SnippetConfig(
        **{"enabled": True, "dir": str(tmp_path), "per_hour": 720.0, "length_s": 1.0, "guard_s": 2.0, **kw}
    )


def test_snippets_are_random_stretches_of_the_stream_with_a_sidecar(tmp_path):
    from device.clipsaver import SnippetKeeper

    keeper = SnippetKeeper(snippets_cfg(tmp_path), RATE, "hey pi", "v7", threshold=0.6, lag_s=0.5, seed=3)
    slow_feed(keeper, 0.0, 300.0)
    wavs = sorted(tmp_path.glob("*_snippet.wav"))
    assert 30 <= keeper.kept == len(wavs) <= 90  # 720/h over 300 s: ~60 (minus what a draw pushes out)
    starts = []
    for w in wavs:
        meta = json.loads(w.with_suffix(".json").read_text())
        audio, rate = read_mono_float(w)
        assert meta["kind"] == "snippet" and meta["keyword"] == "hey pi" and meta["sample_rate"] == RATE
        assert rate == RATE and len(audio) == RATE
        assert abs(audio[0] * 1000 - meta["time_s"]) < 0.05  # the stretch the sidecar names
        starts.append(meta["time_s"])
    gaps = np.diff(sorted(starts))
    assert gaps.min() >= 1.0 and gaps.std() > 0.5  # never overlapping, at random times


def test_no_snippet_near_a_detection_or_a_near_miss(tmp_path):
    from device.clipsaver import SnippetKeeper

    keeper = SnippetKeeper(snippets_cfg(tmp_path), RATE, "k", threshold=0.8, hop_s=0.5, lag_s=0.5, seed=4)
    alarms = []
    t = 0.0
    while t < 600.0:
        keeper.feed(ramp(t, 0.5), t)
        if int(t * 2) % 40 == 7:  # every 20 s: a detection ...
            keeper.detected(Detection(t + 0.5, 0.9))
            alarms.append(t + 0.5)
        probs = np.array([0.45 if int(t * 2) % 40 == 27 else 0.1])  # ... and a near miss (>= 0.5 * 0.8)
        keeper.scored(t, probs)
        if probs[0] > 0.4:
            alarms.append(t + 0.5)
        t += 0.5
    assert keeper.kept > 0 and keeper.skipped > 0
    for w in tmp_path.glob("*_snippet.wav"):
        start = json.loads(w.with_suffix(".json").read_text())["time_s"]
        assert all(not (start - 2.0 <= a <= start + 1.0 + 2.0) for a in alarms), (start, alarms)


def test_snippets_skip_silence_and_gaps_and_keep_to_the_disk_cap(tmp_path):
    from device.clipsaver import Keepers, SnippetKeeper

    one_mb = (RATE * 2 + 400) / 1e6
    keeper = SnippetKeeper(snippets_cfg(tmp_path, max_mb=5.5 * one_mb), RATE, "k", lag_s=0.5, seed=5)
    keepers = Keepers(None, keeper)
    t = 0.0
    while t < 200.0:  # silence: nothing kept
        keepers.feed(np.zeros(RATE // 2, np.float32), t)
        t += 0.5
    assert keeper.kept == 0 and keeper.skipped > 0
    while t < 900.0:
        slow_feed(keepers, t, 0.5)
        t += 0.5
        if t % 50 == 0:
            keepers.discontinuity()  # a stream gap now and then
    assert keeper.kept > 20 and len(list(tmp_path.glob("*.wav"))) == 5  # the cap keeps the newest 5
    assert "room snippet(s) kept" in keepers.status()
    for w in tmp_path.glob("*.wav"):
        start = json.loads(w.with_suffix(".json").read_text())["time_s"]
        assert start // 50 == (start + 1.0) // 50  # never across a gap


def test_a_disk_that_fills_between_the_wav_and_its_sidecar_leaves_no_orphan_wav(tmp_path, monkeypatch, caplog):
    """The WAV takes the last free bytes and the sidecar meets ENOSPC: nothing of the pair may stay
    (`make collect` and the labelling page expect every WAV to have its JSON). Found by `make soak`."""
    import errno

    from device import clipsaver

    def disk_full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(clipsaver, "atomic_write_text", disk_full)
    saver = ClipSaver(SaveConfig(enabled=True, dir=str(tmp_path), pre_roll_s=1.0, post_roll_s=0.5), RATE, "k")
    keeper = clipsaver.SnippetKeeper(
        clipsaver.SnippetConfig(enabled=True, dir=str(tmp_path / "snip"), per_hour=720, length_s=1.0, guard_s=0.0),
        RATE,
        "k",
        seed=1,
    )
    feed(saver, 0.0, 3.0)
    saver.detected(Detection(2.5, 0.9))
    feed(saver, 3.0, 1.0)
    t = 0.0
    while t < 600:
        keeper.feed(ramp(t, 10.0) + 0.1, t)
        t += 10.0
    assert saver.saved == 0 and keeper.kept == 0
    assert list(tmp_path.glob("*.wav")) == [] and list((tmp_path / "snip").glob("*.wav")) == []
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]  # no temp files either
    assert "could not save detection audio" in caplog.text and "No space left" in caplog.text
