"""Several keywords in one daemon (``[[keywords]]``): one capture and step loop, each model with
its own threshold, LED pin and hook; the JSON lines, saved clips and status name the keyword."""

from __future__ import annotations

import json

import pytest

from bench.tonemodel import TONE_S, tone_clip
from device.wavio import write_wav
from tests.device.daemon_helpers import RATE, json_lines, run_wakeword, write_config
from tests.toymodels import model_with_props, wrong_sample_rate_model

TONES_AT = (1.5, 4.0)


@pytest.fixture(scope="module")
def beep_model(tone_model, tmp_path_factory):
    """The tone model's graph under another keyword (a second, real model file)."""
    return model_with_props(tone_model, tmp_path_factory.mktemp("beep") / "beep.onnx", {"wakeword.keyword": "beep"})


def test_two_keywords_each_with_its_own_pin_hook_and_clips(tone_model, beep_model, clips, tmp_path):
    main_edges, beep_edges, hooked = tmp_path / "main-edges", tmp_path / "beep-edges", tmp_path / "hooked"
    saved = tmp_path / "saved"
    hook = tmp_path / "hook.sh"
    hook.write_text(f'#!/bin/sh\necho "$WAKEWORD_KEYWORD" >> "{hooked}"\n')
    hook.chmod(0o755)
    cfg = write_config(
        tmp_path / "c.toml",
        f"""
model = "{tone_model}"
[gpio]
backend = "fake"
pin = 17
fake_edge_log = "{main_edges}"
[save]
enabled = true
dir = "{saved}"
[[keywords]]
model = "{beep_model}"
[keywords.gpio]
backend = "fake"
pin = 27
fake_edge_log = "{beep_edges}"
[keywords.hook]
command = "{hook}"
""",
    )
    r = run_wakeword(["listen", "--config", str(cfg), "--input", str(clips["pos"]), "--json"])
    assert r.returncode == 0, r.stderr
    dets = json_lines(r.stdout)
    for kw in ("tone", "beep"):  # the same graph: both fire on each burst, at the same stream time
        times = [d["time_s"] for d in dets if d["keyword"] == kw]
        assert len(times) == 2, dets
        for t, at in zip(times, TONES_AT):
            assert at + TONE_S - 0.05 <= t <= at + TONE_S + 0.3
    assert hooked.read_text().split() == ["beep", "beep"]  # only beep has a hook
    assert {line.split()[1] for line in main_edges.read_text().splitlines()} == {"17"}
    assert {line.split()[1] for line in beep_edges.read_text().splitlines()} == {"27"}
    assert sum(line.split()[2] == "1" for line in beep_edges.read_text().splitlines()) >= 1
    names = sorted(p.name for p in saved.glob("*.wav"))
    assert sum(n.endswith("_tone.wav") for n in names) == 2 and sum(n.endswith("_beep.wav") for n in names) == 2
    assert {json.loads(p.read_text())["keyword"] for p in saved.glob("*.json")} == {"tone", "beep"}
    assert "keyword 'beep'" in r.stderr and "for 'tone', 'beep'" in r.stderr


def test_each_keyword_keeps_its_own_threshold_and_shares_the_led(tone_model, beep_model, clips, tmp_path):
    edges = tmp_path / "edges"
    cfg = write_config(
        tmp_path / "c.toml",
        f"""
model = "{tone_model}"
[gpio]
backend = "fake"
pin = 5
fake_edge_log = "{edges}"
[[keywords]]
model = "{beep_model}"
[keywords.detect]
threshold = 0.999999
""",
    )
    r = run_wakeword(["listen", "--config", str(cfg), "--input", str(clips["pos"]), "--json"])
    assert r.returncode == 0, r.stderr
    assert [d["keyword"] for d in json_lines(r.stdout)] == ["tone", "tone"]
    assert "threshold 1.000" in r.stderr or "threshold 0.999" in r.stderr


def test_a_long_stream_through_two_models_detects_alike(tone_model, beep_model, tmp_path):
    wav = write_wav(tmp_path / "long.wav", tone_clip(40.0, [5.0, 17.0, 33.0], seed=4), RATE)
    cfg = write_config(tmp_path / "c.toml", f'[gpio]\nbackend = "log"\n[[keywords]]\nmodel = "{beep_model}"\n')
    r = run_wakeword(["listen", "--model", str(tone_model), "--config", str(cfg), "--input", str(wav), "--json"])
    assert r.returncode == 0, r.stderr
    dets = json_lines(r.stdout)
    tone = [d["time_s"] for d in dets if d["keyword"] == "tone"]
    assert len(tone) == 3 and tone == [d["time_s"] for d in dets if d["keyword"] == "beep"]


@pytest.mark.parametrize(
    "extra, code, says",
    [
        ('[[keywords]]\nmodel = "{tone}"\n', 2, "keyword 'tone' is already listened for"),
        ('[[keywords]]\nmodel = "{rate8k}"\n', 3, "[[keywords]] 1"),
        ('[[keywords]]\nmodel = "{missing}"\n', 3, "[[keywords]] 1"),
        ('[keywords]\nmodel = "{tone}"\n', 2, "write [[keywords]] (double brackets)"),
        ("[[keywords]]\n[keywords.detect]\nthreshold = 0.5\n", 2, "model is required"),
        ('[[keywords]]\nmodel = "{tone}"\n[keywords.detect]\nthreshold = nan\n', 2, "must be a finite number"),
    ],
)
def test_bad_keyword_tables_are_one_line(tone_model, tmp_path, extra, code, says):
    rate8k = wrong_sample_rate_model(tone_model, tmp_path / "r8k.onnx")
    text = extra.format(tone=tone_model, rate8k=rate8k, missing=tmp_path / "gone.onnx")
    cfg = write_config(tmp_path / "c.toml", '[gpio]\nbackend = "log"\n' + text)
    wav = write_wav(tmp_path / "x.wav", tone_clip(2.0, [], seed=1), RATE)
    r = run_wakeword(["listen", "--model", str(tone_model), "--config", str(cfg), "--input", str(wav)])
    assert r.returncode == code, r.stderr
    assert says in r.stderr and "Traceback" not in r.stderr
