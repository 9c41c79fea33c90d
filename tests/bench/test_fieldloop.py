"""The field loop's first stages with the real daemon: field audio -> saved detections -> reviewed
false accepts that the next dataset imports; and the benchmark leaving the household out."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf

import benchhelpers  # noqa: F401  (puts tests/ on sys.path for toymodels)
from bench import fieldloop, loopreport
from bench.config import BenchConfig
from device.params import AudioParams
from toymodels import tone_clip
from train import realdata
from train.dataconfig import DataConfig
from train.label.labels import read_label
from train.sources import plan_recordings

SR = 16000


def _household(root):
    """A stand-in for ../shared/data: the household's "speech" holds tone bursts (what the tone
    model fires on: its false accepts); a visitor's too, but the visitor is not in the field."""
    rows = ["path,label,source,license,speaker"]
    for speaker, n in (("household", 3), ("visitor", 2)):
        for k in range(n):
            rel = f"negatives/{speaker}/{k}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(root / rel), tone_clip(3.0, [1.0], seed=k), SR)
            rows.append(f"{rel},negative_speech,test,CC0,{speaker}")
    (root / "noise").mkdir()
    sf.write(str(root / "noise/hum.wav"), (np.random.default_rng(9).standard_normal(SR * 5) * 0.01).astype(np.float32), SR)
    rows.append("noise/hum.wav,noise,test,CC0,none")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


def test_field_false_accepts_become_labelled_negatives_of_the_next_dataset(tmp_path, monkeypatch, tone_model):
    shared = tmp_path / "shared"
    shared.mkdir()
    _household(shared)
    monkeypatch.setenv(realdata.ENV_VAR, str(shared))
    args = fieldloop.parse_args(["--keyword", "tone", "--build", str(tmp_path / "tone"),
                                 "--field-speakers", "household", "--review-threshold", "0.5"])
    assert args.loop_build == tmp_path / "tone-loop"

    field = fieldloop.collect(args, tone_model)

    clips = sorted(field.glob("*.wav"))
    collected = json.loads((args.loop_build / "field" / "collected.json").read_text())
    # the 3 household bursts, clean (in noise the tone model may miss some); the visitor's never played
    assert collected["detections"]["field-clean.wav"] == 3
    assert len(clips) == collected["false_accepts"] == sum(collected["detections"].values())
    assert collected["speakers"] == ["household"]
    for clip in clips:
        state = read_label(clip, None)
        assert state.exists and state.label.kind == "false_accept"
        assert json.loads(clip.with_suffix(".json").read_text())["keyword"] == "tone"  # the daemon's sidecar

    # the next `make data` imports them as hard negatives, with their origin
    plan = plan_recordings(DataConfig(recordings_dir=str(args.loop_build / "recordings")), "tone", AudioParams())
    assert plan.origins == {"recordings/field:false_accept": len(clips)}
    assert {j.kind for j in plan.jobs} == {"confusable"}

    # a second run finds the stage done and changes nothing
    before = {p: p.stat().st_mtime_ns for p in field.iterdir()}
    fieldloop.collect(args, tone_model)
    assert {p: p.stat().st_mtime_ns for p in field.iterdir()} == before


def test_bench_config_names_the_speakers_to_leave_out():
    assert BenchConfig(real_negative_exclude_speakers="george, lucas").real_negative_exclude_speakers == \
        ("george", "lucas")
    assert BenchConfig(real_negative_exclude_speakers=["theo"]).real_negative_exclude_speakers == ("theo",)
    assert BenchConfig().real_negative_exclude_speakers == ()


def test_loop_report_rows_put_before_and_after_side_by_side():
    def report(threshold, miss, fas):
        cal = {"real-clean-pos": {"miss_rate": miss}, "real-10dB-pos": {"miss_rate": miss + 0.1},
               "real-clean-neg": {"false_accepts": fas, "hours": 0.25},
               "real-10dB-neg": {"false_accepts": fas + 1, "hours": 0.25}}
        sets = [{"source": "real", "condition": c, "points": [{"target_fa_per_hour": 0.5, "miss_rate": miss}]}
                for c in ("clean", "10 dB")]
        return {"engines": {"ours": {"decision": {"threshold": threshold}, "calibrated": cal, "sets": sets}}}

    rows = loopreport.rows({"before": report(0.99, 0.5, 3), "after": report(0.95, 0.25, 0)})
    assert rows[0] == "| before | 0.9900 | 50.0 % | 3 in 0.25 h | 60.0 % | 4 in 0.25 h | 50.0 % | 50.0 % |"
    assert rows[1].startswith("| after | 0.9500 | 25.0 % | 0 in 0.25 h | 35.0 % | 1 in 0.25 h |")
