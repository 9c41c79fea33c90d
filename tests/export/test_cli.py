"""`python -m export` end to end on a tiny trained checkpoint, and its refusals (one line, exit 1)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.tonemodel import tone_clip
from device.decision import DecisionConfig, detect
from device.engine import Engine
from device.params import AudioParams
from export.__main__ import main
from export.scoring import stream_probs
from tests.export.test_metadata import load_like_the_device
from tests.toymodels import write_tone_checkpoint

REPO = Path(__file__).resolve().parents[2]


def make_build(tmp_path: Path, checkpoint: Path | None) -> Path:
    build = tmp_path / "build" / "tone"
    (build / "train").mkdir(parents=True)
    if checkpoint is not None:
        shutil.copy(checkpoint, build / "train" / "best.pt")
    return build


def run_cli(build: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "export", "--keyword", "tone", "--build", str(build), *extra],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def quick_export(calib_dir: Path) -> list[str]:
    """The ``--set`` options of a quick export calibrated on ``calib_dir`` (the tone streams)."""
    sets = [f"export.calibration_dir={calib_dir}", "export.min_negative_hours=0.01", "export.bench_steps=5"]
    return [a for s in sets for a in ("--set", s)]


@pytest.fixture(scope="session")
def exported(tmp_path_factory, tone_checkpoint, calib_dir) -> tuple[Path, subprocess.CompletedProcess]:
    build = make_build(tmp_path_factory.mktemp("cli"), tone_checkpoint)
    proc = run_cli(build, *quick_export(calib_dir))
    return build, proc


def test_export_writes_a_calibrated_model_and_its_report(exported):
    build, proc = exported
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    meta = load_like_the_device(build / "model.onnx")
    assert meta.keyword == "tone" and meta.model_version.startswith("tone-")
    cal = meta.calibration
    assert set(cal["thresholds"]) == {"0.5", "0.1"} and meta.threshold == cal["thresholds"]["0.5"]
    assert cal["decision"] == {"smoothing_frames": 1, "refractory_s": 2.0}
    assert cal["negative_hours"] == pytest.approx(90 / 3600, rel=1e-3)
    assert meta.training["step"] == 120 and meta.training["data"]["clips"] == 48
    assert meta.stream["chunk_multiple_samples"] == meta.params.output_hop_samples
    assert {"torch", "onnx", "onnxruntime", "opset", "wakeword"} <= set(meta.versions)
    for name in ("report.md", "report.json", "det.png", "config.json"):
        assert (build / "export" / name).is_file(), name
    assert not list(build.glob("export/candidate*")) and not list(build.rglob(".*.tmp"))
    report = json.loads((build / "export" / "report.json").read_text())
    assert report["parity"]["worst"] <= 1e-4
    assert report["cost"]["fp32"]["stream_cpu_ms"] > 0 and report["cost"]["fp32"]["window_cpu_ms"] > 0
    assert "ai.onnx:GRU" in report["model"]["op_types"]


def test_exported_threshold_detects_the_tone_and_ignores_other_sounds(exported, params):
    build, _ = exported
    stepper = Engine.load(build / "model.onnx")
    rule = DecisionConfig(stepper.meta.threshold)
    hit = stream_probs(stepper, tone_clip(6.0, [2.0], seed=77), params.chunk_samples)
    assert len(detect(hit, params.output_hop_s, rule)) == 1
    quiet = stream_probs(stepper, tone_clip(6.0, [], seed=78), params.chunk_samples)
    assert detect(quiet, params.output_hop_s, rule) == []


def test_int8_variant_is_reported_and_kept_only_within_its_bound(exported):
    build, _ = exported
    report = json.loads((build / "export" / "report.json").read_text())
    int8 = report["int8"]
    assert int8["quantized_nodes"] and "int8" in report["cost"]
    within = int8["miss_increase"] <= int8["bound"] + 1e-12 and int8["target_met"]
    assert int8["kept"] == (within and int8["cpu_ratio_vs_fp32"] <= 0.9)
    assert (build / "model.int8.onnx").is_file() == int8["kept"]
    if int8["kept"]:
        assert load_like_the_device(build / "model.int8.onnx").threshold == pytest.approx(int8["threshold"])


def test_missing_checkpoint_is_one_line_and_exit_1(tmp_path):
    build = make_build(tmp_path, None)
    proc = run_cli(build)
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"export: error: no checkpoint at {build}/train/best.pt; run `make train` first"
    assert not (build / "model.onnx").exists()


def _checkpoint_variant(src: Path, dst: Path, **changes) -> None:
    state = torch.load(src, map_location="cpu", weights_only=False)
    state.update(changes)
    torch.save(state, dst)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"keyword": "computer"}, "trained for keyword 'computer', not 'tone'"),
        ({"format": 7}, "checkpoint format 7"),
        (
            {"model_config": {"embed_dim": 96, "hidden": 32, "layers": 2, "dropout": 0.0}},
            "weights do not fit its model config",
        ),
        ({"model_config": {"n_mels": 40, "conv_channels": 32}}, "bad model config"),
        ({"audio_params": {"sample_rate": 16000, "bogus": 1}}, "bad audio parameters"),
        ({"audio_params": {**AudioParams().to_dict(), "output_stride": 4}}, "fixed audio numbers"),
        (
            {"audio_params": {**AudioParams().to_dict(), "frontend": "speech_embedding@ffff"}},
            "trained on front end 'speech_embedding@ffff'",
        ),
        ({"model": None}, "model is a NoneType, not a dict"),
    ],
)
def test_incompatible_checkpoint_is_one_line_and_keeps_the_old_model(
    tmp_path, tone_checkpoint, capsys, changes, message
):
    build = make_build(tmp_path, None)
    _checkpoint_variant(tone_checkpoint, build / "train" / "best.pt", **changes)
    (build / "model.onnx").write_bytes(b"the previous good model")
    assert main(["--keyword", "tone", "--build", str(build)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("export: error: ") and message in err and "\n" not in err
    assert (build / "model.onnx").read_bytes() == b"the previous good model"


def test_corrupt_checkpoint_is_one_line(tmp_path, tone_checkpoint, capsys):
    build = make_build(tmp_path, None)
    data = tone_checkpoint.read_bytes()
    (build / "train" / "best.pt").write_bytes(data[: len(data) // 3])
    assert main(["--keyword", "tone", "--build", str(build)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("export: error: ") and "best.pt" in err and "\n" not in err


def test_failure_after_tracing_keeps_the_old_model(tmp_path, tone_checkpoint, capsys):
    build = make_build(tmp_path, tone_checkpoint)
    (build / "model.onnx").write_bytes(b"the previous good model")
    code = main(["--keyword", "tone", "--build", str(build), "--set", f"export.calibration_dir={tmp_path}/none"])
    assert code == 1
    assert "calibration folder" in capsys.readouterr().err
    assert (build / "model.onnx").read_bytes() == b"the previous good model"
    assert not list(build.rglob("candidate*")) and not list(build.rglob(".*.tmp"))


def test_bad_config_is_one_line_and_exit_2(tmp_path, tone_checkpoint, capsys):
    build = make_build(tmp_path, tone_checkpoint)
    assert main(["--keyword", "tone", "--build", str(build), "--set", "export.no_such_key=1"]) == 2
    assert "[export]: unknown key 'no_such_key'" in capsys.readouterr().err


def test_two_runs_combine_into_one_model_that_exports_and_runs(tmp_path, tone_checkpoint, calib_dir, capsys):
    from train import combine
    from train.model import Heads

    one = make_build(tmp_path / "a", tone_checkpoint)
    two = make_build(tmp_path / "b", write_tone_checkpoint(tmp_path / "seed1.pt", seed=1))
    out = tmp_path / "build" / "tone-ens"
    assert combine.main(["--keyword", "tone", "--build", str(out), "--from", str(one), "--from", str(two)]) == 0
    state = torch.load(out / "train" / "best.pt", weights_only=False)
    assert state["model_config"]["heads"] == 2 and [c["build"] for c in state["combined_from"]] == [str(one), str(two)]
    proc = run_cli(out, *quick_export(calib_dir))
    assert proc.returncode == 0, proc.stderr
    from device.api import Detector
    from export.source import build_detector, load_checkpoint

    assert isinstance(build_detector(load_checkpoint(out / "train" / "best.pt")).head, Heads)
    det = Detector(out / "model.onnx")  # the device runs it: the mean of two heads peaks at each tone
    det.feed(tone_clip(6.0, [1.5, 4.0], seed=9))
    t = (np.arange(len(det.scores)) + 1) * det.params.output_hop_s
    near = ((t > 1.6) & (t < 2.6)) | ((t > 4.1) & (t < 5.1))
    assert det.scores[near].max() > 2 * det.scores[~near].max()
    # refused, one line each: a single run, a run of another keyword
    capsys.readouterr()
    assert combine.main(["--keyword", "tone", "--build", str(tmp_path / "x"), "--from", str(one)]) == 1
    assert "at least two" in capsys.readouterr().err
    assert (
        combine.main(["--keyword", "beep", "--build", str(tmp_path / "y"), "--from", str(one), "--from", str(two)]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("combine: error:") and "not 'beep'" in err and "\n" not in err
