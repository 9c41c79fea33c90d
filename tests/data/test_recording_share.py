"""``[data] recording_share``: the user's own audio is drawn often enough to matter, and every
clip that draws none of it is the clip a dataset without it would hold (so a fine-tune with and
one without the user's audio differ by that audio alone)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import soundfile as sf

from device.params import AudioParams
from tests.data.toneclips import tone_entries, tone_sources
from train import clipmaker, datasynth
from train.dataconfig import DataConfig
from train.dataset import _build_key
from train.sources import USER_SPEAKER

SR = 16000


@pytest.fixture
def entries(tmp_path):
    return tone_entries(tmp_path)


def test_a_share_of_picks_is_the_users_and_the_other_clips_are_unchanged(entries):
    cfg = DataConfig(seed=3, clip_s=3.0, recording_share=0.3, keyword_clip_fraction=0.7, max_negatives_per_clip=3)
    with_user, without = tone_sources(entries, cfg, True), tone_sources(entries, cfg, False)
    kw_picks = user_kw = conf_picks = user_conf = unchanged = 0
    for i in range(120):
        clip = clipmaker.make_clip(with_user, *datasynth.clip_rngs(cfg, "train", i))
        texts = [k["text"] for k in clip.meta["keywords"]]
        negs = [n["text"] for n in clip.meta["negatives"] if n["kind"] == "confusable"]
        kw_picks, user_kw = kw_picks + len(texts), user_kw + texts.count("take")
        conf_picks, user_conf = conf_picks + len(negs), user_conf + negs.count("false_accept")
        if "take" not in texts and "false_accept" not in negs:
            plain = clipmaker.make_clip(without, *datasynth.clip_rngs(cfg, "train", i))
            np.testing.assert_array_equal(clip.audio, plain.audio)
            assert clip.meta == plain.meta
            unchanged += 1
    assert 0.18 < user_kw / kw_picks < 0.42, (user_kw, kw_picks)
    assert 0.15 < user_conf / conf_picks < 0.45, (user_conf, conf_picks)
    assert unchanged > 30


def test_with_no_synthetic_keywords_every_keyword_pick_is_the_users(entries):
    cfg = DataConfig(seed=1, clip_s=3.0, recording_share=0.1, keyword_clip_fraction=1.0)
    src = dataclasses.replace(tone_sources(entries, cfg, True), keywords=[])
    texts = [
        k["text"]
        for i in range(10)
        for k in clipmaker.make_clip(src, *datasynth.clip_rngs(cfg, "train", i)).meta["keywords"]
    ]
    assert texts and set(texts) == {"take"}


def test_split_sources_favours_the_users_audio_only_when_asked(entries, tmp_path):
    index = {"entries": [dict(e, path=e["path"].rsplit("/", 1)[1]) for group in entries.values() for e in group]}
    (tmp_path / "sources").mkdir()
    for group in entries.values():
        for e in group:
            (tmp_path / "sources" / e["path"].rsplit("/", 1)[1]).write_bytes(open(e["path"], "rb").read())
    params = AudioParams()
    on = datasynth.split_sources(index, tmp_path, DataConfig(rooms=0), params, {})["train"]
    assert [e["text"] for e in on.users_keywords] == ["take"] and len(on.keywords) == 4
    assert [e["text"] for e in on.users_confusables] == ["false_accept"] and len(on.confusables) == 4
    off = datasynth.split_sources(index, tmp_path, DataConfig(rooms=0, recording_share=0.0), params, {})["train"]
    assert not off.users_keywords and len(off.keywords) == 5 and len(off.confusables) == 5

    # the share is part of a dataset's identity only when there is user audio for it to act on
    tts_only = {"entries": [e for e in index["entries"] if e["speaker"] != USER_SPEAKER]}
    key = lambda idx, share: _build_key("computer", DataConfig(recording_share=share), params, idx, {})  # noqa: E731
    assert key(tts_only, 0.2) == key(tts_only, 0.5)
    assert key(index, 0.2) != key(index, 0.5)


def _room_then_word(path, word_at_s: float, seconds: float = 3.0) -> None:
    """A recording: a room's hum (48 dB down), then a loud "word" (a 500 Hz burst) of 0.5 s at ``word_at_s``."""
    t = np.arange(int(seconds * SR)) / SR
    word = (t >= word_at_s) & (t < word_at_s + 0.5)
    audio = 0.002 * np.sin(2 * np.pi * 60 * t) + 0.5 * np.sin(2 * np.pi * 500 * t) * word
    sf.write(str(path), audio.astype(np.float32), SR)


@pytest.mark.parametrize("context_s", [0.0, 1.0])
def test_the_users_keyword_keeps_the_room_before_it(tmp_path, context_s):
    import json

    from train.sources import RenderContext, plan_recordings, render

    pos = tmp_path / "recordings" / "computer" / "positive"
    pos.mkdir(parents=True)
    _room_then_word(pos / "labelled.wav", 2.0)
    (pos / "labelled.wav.label.json").write_text(
        json.dumps({"version": 1, "kind": "keyword", "keyword_spans": [[2.0, 2.5]], "updated": ""})
    )
    _room_then_word(pos / "take.wav", 0.3)  # a recorder's take: little before the word
    neg = tmp_path / "recordings" / "computer" / "negative"
    neg.mkdir()
    _room_then_word(neg / "other.wav", 2.0)
    cfg = DataConfig(
        recordings_dir=str(tmp_path / "recordings"), recording_context_s=context_s, recording_val_fraction=0.0
    )
    plan = plan_recordings(cfg, "computer", AudioParams())
    ctx = RenderContext(AudioParams(), str(tmp_path / "sources"), 2.6, 9.0)
    assert render(plan.jobs, ctx, 1)["rendered"] == 3
    seconds = {j.text: sf.info(str(tmp_path / "sources" / j.relpath)).duration for j in plan.jobs}
    assert seconds["labelled"] == pytest.approx(0.5 + context_s, abs=0.01)  # the span, and the second before it
    assert seconds["take"] == pytest.approx(0.5 + min(context_s, 0.3), abs=0.02)  # as much as there is
    assert seconds["other"] == pytest.approx(0.5, abs=0.02)  # not a keyword: cut to the sound itself
    audio, _ = sf.read(str(tmp_path / "sources" / next(j for j in plan.jobs if j.text == "labelled").relpath))
    if context_s:
        n = int(0.5 * SR)
        assert np.abs(audio[-n:]).max() > 10 * np.abs(audio[:-n]).max()  # room first, the word at the end
