"""The take session (device/takes.py) on real audio arrays: what is kept, trimmed, saved, refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from device.speech import SpeechConfig, find_speech
from device.takes import Session, SessionConfig
from tests.record.record_helpers import RATE, spoken_takes
from tests.record.record_synth import speech_in_noise

SPEECH = SpeechConfig()
PAD_S = SPEECH.pad_ms / 1000


class ArraySource:
    """Audio from an array in blocks of varying size, like a capture queue hands them over."""

    def __init__(self, audio: np.ndarray, block_sizes=(512, 1000, 37, 4096)):
        self.audio, self.pos, self.sizes, self.i, self.flushes = audio, 0, block_sizes, 0, 0

    def read(self):
        if self.pos >= len(self.audio):
            return None
        n = self.sizes[self.i % len(self.sizes)]
        self.i += 1
        block, self.pos = self.audio[self.pos : self.pos + n], self.pos + n
        return block

    def flush(self):
        self.flushes += 1

    def describe(self):
        return {"name": "array", "channels": 1, "rate_hz": RATE}


class ScriptedUI:
    """Answers the session's questions from a script; remembers what it was shown."""

    def __init__(self, reviews=(), starts=()):
        self.reviews, self.starts = list(reviews), list(starts)
        self.prompts, self.messages, self.takes, self.levels = [], [], [], 0

    def prompt(self, index, total, text):
        self.prompts.append(text)
        return self.starts.pop(0) if self.starts else True

    def level(self, dbfs, speaking):
        self.levels += 1

    def review(self, take):
        self.takes.append(take)
        return self.reviews.pop(0) if self.reviews else ("keep" if take.usable else "redo")

    def message(self, text):
        self.messages.append(text)

    def kept(self, path):
        pass


def words(durations_s, seed=0):
    """Synthetic words of the given lengths, 1.5 s apart, after a 1.8 s quiet lead-in."""
    rng = np.random.default_rng(seed)
    parts, spans, t = [], [], 0.0
    for i, dur in enumerate(durations_s):
        lead = 1.8 if i == 0 else 1.5
        audio, start, end = speech_in_noise(rng, RATE, lead, [(dur, 0.0)], 0.0, -20.0, 35.0)
        parts.append(audio)
        spans.append((t + start, t + end))
        t += len(audio) / RATE
    tail = rng.standard_normal(3 * RATE) * 10 ** ((-20.0 - 35.0) / 20)  # the same noise, no speech
    return np.concatenate(parts + [tail.astype(np.float32)]), spans


def session(audio, tmp_path, ui=None, **cfg):
    cfg = SessionConfig(**{"keyword": "computer", "takes": 3, **cfg})
    return Session(ArraySource(audio), ui or ScriptedUI(), cfg, tmp_path / "rec", flush_between_takes=False)


def test_keeps_trimmed_takes_with_sidecars(tmp_path):
    audio, _ = words([0.35, 0.5, 0.65])
    s = session(audio, tmp_path)
    assert s.run() == 3
    assert [p.parent.name for p in s.saved] == ["positive"] * 3
    for path, want_s in zip(s.saved, [0.35, 0.5, 0.65]):
        info = sf.info(path)
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
        meta = json.loads(path.with_suffix(".json").read_text())
        start, end = meta["speech_span_s"]
        assert abs((end - start) - want_s) <= 0.03
        assert abs(info.duration - (want_s + 2 * PAD_S)) <= 0.04
        assert meta["keyword"] == "computer" and meta["kind"] == "positive" and meta["ended_by"] == "silence"
        assert meta["snr_db"] > 25 and meta["warnings"] == []
        # the file really holds the speech where the sidecar says
        saved, _ = sf.read(path, dtype="float32")
        again = find_speech(saved, RATE, SPEECH)
        assert abs(again.start / RATE - start) <= 0.02 and abs(again.end / RATE - end) <= 0.02


def test_redo_drops_the_take_and_the_prompt_repeats(tmp_path):
    audio, _ = words([0.3, 0.5, 0.7])
    ui = ScriptedUI(reviews=["redo", "keep", "keep"])
    s = session(audio, tmp_path, ui, takes=2)
    assert s.run() == 2
    lengths = [np.diff(json.loads(p.with_suffix(".json").read_text())["speech_span_s"])[0] for p in s.saved]
    assert lengths == pytest.approx([0.5, 0.7], abs=0.03)
    assert ui.prompts[0] == ui.prompts[1] == "Say 'computer'"


def test_quit_saves_nothing_more(tmp_path):
    audio, _ = words([0.4, 0.4, 0.4])
    s = session(audio, tmp_path, ScriptedUI(reviews=["keep", "quit"]))
    assert s.run() == 1
    assert len(list((tmp_path / "rec" / "positive").iterdir())) == 2  # one WAV + its sidecar


def test_silence_gives_up_after_failed_takes(tmp_path):
    rng = np.random.default_rng(3)
    noise = (rng.standard_normal(30 * RATE) * 0.003).astype(np.float32)
    ui = ScriptedUI()
    s = session(noise, tmp_path, ui, max_wait_s=2.0, max_failed_in_a_row=3)
    assert s.run() == 0
    assert [t.ended_by for t in ui.takes] == ["no_speech"] * 3
    assert any("without speech" in m for m in ui.messages)
    assert not (tmp_path / "rec").exists()


def test_the_input_ending_stops_the_session(tmp_path):
    audio, _ = words([0.4])
    s = session(audio, tmp_path, takes=3)
    assert s.run() == 1 and s.input_ended


def test_long_speech_is_cut_with_a_warning(tmp_path):
    audio, _ = words([3.0])
    ui = ScriptedUI()
    s = session(audio, tmp_path, ui, takes=1, max_take_s=1.5)
    assert s.run() == 1
    assert ui.takes[0].ended_by == "max_length"
    assert any("still speaking" in w for w in ui.takes[0].warnings)


def test_clipping_and_quiet_speech_are_warned_about(tmp_path):
    audio, _ = words([0.5, 0.5])
    loud = np.clip(audio * 60, -1, 1).astype(np.float32)
    quiet = (audio * 0.02).astype(np.float32)
    for data, expect in ((loud, "clipped"), (quiet, "quiet")):
        ui = ScriptedUI()
        assert session(data, tmp_path / expect, ui, takes=1).run() == 1
        assert any(w.startswith(expect) for w in ui.takes[0].warnings), ui.takes[0].warnings


def test_negative_takes_go_to_their_folder_with_their_prompts(tmp_path):
    audio, _ = words([0.6, 0.6])
    ui = ScriptedUI()
    s = session(audio, tmp_path, ui, takes=2, kind="negative", phrases=("hello there", "good night"))
    assert s.run() == 2
    assert ui.prompts == ["hello there", "good night"]
    assert all(p.parent.name == "negative" for p in s.saved)
    assert json.loads(s.saved[1].with_suffix(".json").read_text())["prompt"] == "good night"


def test_espeak_word_is_trimmed_to_its_spoken_length(tmp_path, word):
    s = session(spoken_takes(word, 2), tmp_path, takes=2)
    assert s.run() == 2
    for path in s.saved:
        start, end = json.loads(path.with_suffix(".json").read_text())["speech_span_s"]
        assert abs((end - start) - word.speech_s) <= 0.05


def test_flush_is_called_before_each_take_when_asked(tmp_path):
    audio, _ = words([0.4, 0.4])
    src = ArraySource(audio)
    cfg = SessionConfig(keyword="computer", takes=2)
    Session(src, ScriptedUI(), cfg, tmp_path, flush_between_takes=True).run()
    assert src.flushes == 2


def test_config_refuses_nonsense():
    with pytest.raises(ValueError, match="kind"):
        SessionConfig(keyword="x", kind="maybe")
    with pytest.raises(ValueError, match="keyword"):
        SessionConfig(keyword="  ")
    with pytest.raises(ValueError, match="takes"):
        SessionConfig(keyword="x", takes=0)
