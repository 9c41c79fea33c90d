"""train.realdata: finding ../shared/data (or $WAKEWORD_SHARED_DATA), and coping without it."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from train import realdata


def _fake_shared(root):
    for rel in ("computer/a/1.wav", "computer/b/2.wav", "negatives/fsdd_8khz/0_x_0.wav", "noise/fan.wav"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        rate = 8000 if "8khz" in rel else 16000
        sf.write(str(root / rel), np.zeros(rate // 10, np.float32), rate)
    (root / "manifest.csv").write_text(
        "path,label,source,license,speaker\n"
        'computer/a/1.wav,positive,x,"Apache-2.0",unknown\n'
        "computer/b/2.wav,positive,y,PD,s1\n"
        "negatives/fsdd_8khz/0_x_0.wav,negative_speech,fsdd,CC BY-SA 4.0,x\n"
        "noise/fan.wav,noise,z,PD,none\n"
        "computer/missing.wav,positive,x,PD,none\n"
    )


def test_locates_by_environment_and_lists_by_label(tmp_path, monkeypatch):
    _fake_shared(tmp_path)
    monkeypatch.setenv(realdata.ENV_VAR, str(tmp_path))
    assert realdata.locate() == tmp_path.resolve()
    kw = realdata.keyword_clips("computer")
    assert sorted(c.path.name for c in kw) == ["1.wav", "2.wav"]  # a listed but missing file is left out
    assert all(c.path.is_absolute() and c.label == "positive" for c in kw)
    assert [c.path.name for c in realdata.negative_clips()] == ["0_x_0.wav"]
    assert [c.path.name for c in realdata.noise_clips()] == ["fan.wav"]
    assert realdata.keyword_clips("hey_robot") == []
    # a file whose speaker is not known is its own speaker, so a split by speaker can divide its folder
    assert {c.path.name: c.speaker for c in kw} == {"1.wav": "unknown:computer/a/1.wav", "2.wav": "s1"}


def test_absent_shared_data_is_none_and_empty(tmp_path, monkeypatch):
    monkeypatch.setenv(realdata.ENV_VAR, str(tmp_path / "nowhere"))
    assert realdata.locate() is None
    assert realdata.keyword_clips("computer") == [] and realdata.noise_clips() == []


def test_keyword_spans_and_negatives_that_say_the_keyword(tmp_path, monkeypatch):
    _fake_shared(tmp_path)
    for rel in ("operator/w/5.flac", "negatives/w/7.flac"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(tmp_path / rel), np.zeros(1600, np.float32), 16000, format="FLAC")
    lines = (tmp_path / "manifest.csv").read_text().splitlines()
    (tmp_path / "manifest.csv").write_text(
        "\n".join(
            [lines[0] + ",kw_start_s,kw_end_s"]
            + [ln + ",," for ln in lines[1:]]
            + ["operator/w/5.flac,positive,w,CC,s2,6.5,7.1", "negatives/w/7.flac,negative_speech,w,CC,s2,,"]
        )
        + "\n"
    )
    mentions = tmp_path / "mentions.csv"
    mentions.write_text("# comment\npath,keyword,evidence\nnegatives/w/7.flac,computer,asr: my computer\n")
    monkeypatch.setenv(realdata.ENV_VAR, str(tmp_path))
    monkeypatch.setattr(realdata, "MENTIONS_FILE", mentions)
    root = realdata.locate()
    assert realdata.keyword_spans() == {root / "operator/w/5.flac": (6.5, 7.1)}
    everything = {c.path.name for c in realdata.negative_clips()}
    assert everything == {"0_x_0.wav", "7.flac"}
    assert {c.path.name for c in realdata.negative_clips(keyword="computer")} == {"0_x_0.wav"}
    assert {c.path.name for c in realdata.negative_clips(keyword="operator")} == everything
