"""The field loop with the real programs on a stand-in household: periods, ``wakeword record`` on
the household's takes, the daemon's saved detections reviewed into true and false accepts that the
next dataset imports, the benchmark scoring of the models, and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from bench import fieldloop, loopreport
from bench.config import BenchConfig
from bench.tonemodel import tone_clip
from device.params import AudioParams
from train import realdata
from train.dataconfig import DataConfig
from train.label.labels import read_label
from train.sources import plan_recordings

SR = 16000


def _shared(root):
    """A stand-in for ../shared/data where the keyword "tone" is a 1 kHz burst (what the tone model
    fires on). The household says it (``tone/``) and says other things, some holding a burst (its
    false accepts); a visitor does the same but is never in the household."""
    rows = ["path,label,source,license,speaker"]
    for speaker, n in (("household", 16), ("visitor", 4)):
        for k in range(n):
            rel = f"tone/{speaker}-{k}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(root / rel), tone_clip(1.6, [0.6], seed=k), SR)
            rows.append(f"{rel},positive,test,CC0,{speaker}")
        for k in range(n):
            rel = f"negatives/{speaker}/{k}.wav"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(root / rel), tone_clip(2.5, [1.0] if k % 2 else [], seed=100 + k), SR)
            rows.append(f"{rel},negative_speech,test,CC0,{speaker}")
    (root / "noise").mkdir()
    hum = (np.random.default_rng(9).standard_normal(SR * 5) * 0.01).astype(np.float32)
    sf.write(str(root / "noise/hum.wav"), hum, SR)
    rows.append("noise/hum.wav,noise,test,CC0,none")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")


@pytest.fixture
def household(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    _shared(shared)
    monkeypatch.setenv(realdata.ENV_VAR, str(shared))
    args = fieldloop.parse_args(
        [
            "--keyword",
            "tone",
            "--build",
            str(tmp_path / "tone"),
            "--household",
            "household",
            "--review-threshold",
            "0.5",
        ]
    )
    return args, fieldloop.split_household("tone", args.household)


def test_the_household_is_split_into_periods_by_file(household):
    args, hh = household
    assert args.loop_build.name == "tone-loop" and args.household == ("household",)
    periods = [hh.recorded, hh.field_keyword, hh.later_keyword, hh.field_other, hh.later_other]
    every = [p for period in periods for p in period]
    assert len(every) == len(set(every)) == 32  # each file in one period; the visitor in none
    assert all("household" in p.name or "household" in p.parent.name for p in every)
    assert hh.recorded and hh.field_keyword and hh.later_keyword and hh.field_other and hh.later_other
    assert fieldloop.split_household("tone", ("household",)) == hh  # stable


def test_recording_and_field_review_feed_the_next_dataset(household, tone_model):
    args, hh = household
    out = fieldloop.record(args, hh)
    takes = sorted((out / "positive").glob("*.wav"))
    assert len(takes) == len(hh.recorded)  # `wakeword record` kept every take it was played
    meta = json.loads(takes[0].with_suffix(".json").read_text())
    assert meta["kind"] == "positive" and meta["speaker"] == "household" and meta["sample_rate"] == SR

    field = fieldloop.collect(args, tone_model, hh)
    collected = json.loads((args.loop_build / "field" / "collected.json").read_text())
    clean = collected["wavs"]["field-clean.wav"]
    assert clean["keywords"] == len(hh.field_keyword)
    assert clean["true_accept"] == len(hh.field_keyword)  # the tone model hears every clean burst...
    bursts = sum(1 for p in hh.field_other if int(p.stem) % 2)
    assert clean["false_accept"] == bursts  # ...and each burst in the other speech is a false accept
    labelled = {}
    for clip in sorted(field.glob("*.wav")):
        state = read_label(clip, None)
        assert state.exists
        labelled[state.label.kind] = labelled.get(state.label.kind, 0) + 1
        if state.label.kind == "true_accept":  # the take's span, inside the saved clip
            ((a, b),) = state.label.keyword_spans
            assert 0 <= a < b <= sf.info(str(clip)).duration
        assert json.loads(clip.with_suffix(".json").read_text())["keyword"] == "tone"  # the daemon's sidecar
    assert labelled == {"true_accept": collected["true_accept"], "false_accept": collected["false_accept"]}

    # the next `make data` imports them all, with where each came from
    plan = plan_recordings(DataConfig(recordings_dir=str(args.loop_build / "recordings")), "tone", AudioParams())
    assert plan.origins == {
        "recordings/positive": len(takes),
        "recordings/field:true_accept": collected["true_accept"],
        "recordings/field:false_accept": collected["false_accept"],
    }

    # a second run finds both stages done and changes nothing
    before = {p: p.stat().st_mtime_ns for p in field.iterdir()}
    fieldloop.record(args, hh)
    fieldloop.collect(args, tone_model, hh)
    assert {p: p.stat().st_mtime_ns for p in field.iterdir()} == before


def test_review_marks_a_take_true_with_its_span_and_anything_else_false():
    sidecar = {"time_s": 12.3, "clip_start_s": 10.0}
    label = fieldloop.review(sidecar, [(3.0, 3.6), (11.5, 12.1)], clip_s=3.0)
    assert label.kind == "true_accept" and label.keyword_spans == ((1.5, 2.1),)
    assert fieldloop.review(sidecar, [(3.0, 3.6)], clip_s=3.0).kind == "false_accept"
    late = {"time_s": 13.5, "clip_start_s": 11.0}  # more than the tolerance after the take
    assert fieldloop.review(late, [(11.5, 12.1)], clip_s=3.0).kind == "false_accept"


def test_models_are_scored_on_the_household_later_and_on_everyone_else(household, tone_model, tmp_path):
    args, hh = household
    (args.loop_build / "field").mkdir(parents=True)
    (args.loop_build / "field" / "collected.json").write_text(
        json.dumps({"review_threshold": 0.5, "true_accept": 3, "false_accept": 2})
    )
    measured = fieldloop.measure(args, {"before": tone_model, "after": tone_model}, hh)

    tests = measured["tests"]
    later = {t["slug"]: t for t in tests["household"]}
    assert later["household-clean-pos"]["keywords"] == len(hh.later_keyword)
    others = {t["slug"]: t for t in tests["others"]}
    assert others["real-clean-pos"]["keywords"] == 4  # the visitor's takes only: the household is left out
    for name in ("before", "after"):
        cal = measured["models"][name]["household"]["calibrated"]
        assert cal["household-clean-pos"]["miss_rate"] == 0.0  # the tone model hears every clean burst
        assert cal["household-clean-neg"]["false_accepts"] == sum(1 for p in hh.later_other if int(p.stem) % 2)
    again = fieldloop.measure(args, {"before": tone_model, "after": tone_model}, hh)  # a re-run reads it back
    assert json.dumps(again, sort_keys=True) == json.dumps(measured, sort_keys=True)

    report = loopreport.write_report(args, hh, measured).read_text()
    assert "3 true accepts and 2 false accepts" in report
    rows = [line for line in report.splitlines() if line.startswith("| before")]
    assert len(rows) == 2 and rows[0].startswith("| before (shipped) |")
    assert f"0.0 % (0/{len(hh.later_keyword)})" in rows[0]


def test_bench_config_names_the_speakers_to_leave_out():
    from train.config import section

    def exclude(value):
        return section({"bench": {"real_exclude_speakers": value}}, "bench", BenchConfig).real_exclude_speakers

    assert exclude("george, lucas") == ("george", "lucas")  # `--set bench.real_exclude_speakers=george,lucas`
    assert exclude(["theo"]) == ("theo",)
    assert BenchConfig().real_exclude_speakers == ()


def test_loop_report_rows_put_the_three_models_side_by_side():
    def group(source, miss, fas):
        cal = {
            f"{source}-clean-pos": {"miss_rate": miss, "keywords": 20},
            f"{source}-10dB-pos": {"miss_rate": miss + 0.1, "keywords": 20},
            f"{source}-clean-neg": {"false_accepts": fas, "hours": 0.25},
            f"{source}-10dB-neg": {"false_accepts": fas + 1, "hours": 0.25},
        }
        sets = [
            {
                "source": s,
                "condition": c,
                "points": [{"target_fa_per_hour": 0.5, "miss_rate": miss, "fa_per_hour": 0.0}],
            }
            for s in (source, "synthetic")
            for c in ("clean", "10 dB")
        ]
        return {"calibrated": cal, "sets": sets}

    measured = {
        "models": {
            name: {"threshold": thr, "household": group("household", miss, fas), "others": group("real", miss, fas)}
            for name, thr, miss, fas in (("before", 0.99, 0.8, 3), ("control", 0.98, 0.75, 2), ("after", 0.97, 0.2, 0))
        }
    }
    rows = loopreport.household_rows(measured)
    assert rows[0] == "| before (shipped) | 0.9900 | 80.0 % (16/20) | 3 in 0.25 h | 90.0 % (18/20) | 4 in 0.25 h |"
    assert rows[2].startswith("| after one loop (household audio) | 0.9700 | 20.0 % (4/20) | 0 in 0.25 h |")
    others = loopreport.others_rows(measured)
    assert others[1] == (
        "| control fine-tune (no household audio) | 75.0 % (15/20) | 85.0 % (17/20) | 2 in 0.2 h "
        "| 3 in 0.2 h | - / - | 75.0 % | 75.0 % | 75.0 % | 75.0 % |"
    )


def test_room_snippets_from_the_field_period_join_the_next_dataset_as_negatives(household, tone_model):
    """A household that talks a lot without the keyword: the daemon keeps room snippets, away from
    every burst, and they reach the fine-tune's plan unreviewed, as negatives."""
    args, hh = household
    talk = args.build.parent / "talk"
    talk.mkdir()
    for k in range(6):  # 40 s of hum-like talk each, no burst: room for snippets
        path = talk / f"talk-{k}.wav"
        sf.write(str(path), tone_clip(40.0, [], seed=300 + k) + 0.05 * np.sin(np.arange(SR * 40) / 37.0), SR)
        hh.field_other.append(path)
    args.snippets_per_hour = 720.0
    fieldloop.collect(args, tone_model, hh)
    collected = json.loads((args.loop_build / "field" / "collected.json").read_text())
    kept = {name: w["snippets"] for name, w in collected["wavs"].items()}
    assert sum(kept.values()) >= 4, kept
    folder = args.loop_build / "recordings" / "tone" / "snippets"
    assert len(list(folder.rglob("*_snippet.wav"))) == sum(kept.values())
    plan = plan_recordings(DataConfig(recordings_dir=str(args.loop_build / "recordings")), "tone", AudioParams())
    assert plan.origins["recordings/snippets"] == sum(kept.values())
    assert all(j.kind == "confusable" for j in plan.jobs if j.origin.endswith("_snippet.wav"))
