"""Calibration streams from held-out speakers: right groups, keyword spans only in positives,
training speakers left out, deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from export.calib_streams import CalibrationDataError
from export.heldout import HeldoutPlan, heldout_source
from train.streams import StreamConfig


@pytest.fixture(scope="session")
def sources_build(tmp_path_factory, params):
    """A tiny ``build/<kw>/sources`` in the dataset layout: val speaker espeak+adam, train speaker espeak+Alex."""
    from train import tts
    from train.audio_io import resample, write_wav

    if tts.engine_module("espeak").probe() is not None:
        pytest.skip("espeak-ng is not usable here")
    build = tmp_path_factory.mktemp("heldout") / "build" / "computer"
    root = build / "sources"
    entries = []
    jobs = [
        ("keyword", "val", "en-us+adam", "espeak+adam", "computer"),
        ("keyword", "val", "en-gb-x-rp+adam", "espeak+adam", "computer!"),
        ("confusable", "val", "en-us+adam", "espeak+adam", "commuter"),
        ("keyword", "train", "en-us+Alex", "espeak+Alex", "computer"),
    ]
    for i, (kind, split, voice, speaker, text) in enumerate(jobs):
        res = tts.synthesize([tts.Request(tts.Voice("espeak", voice, speaker), text)])[0]
        assert not isinstance(res, str), res
        rel = f"{kind}/espeak/{i}.wav"
        write_wav(root / rel, resample(res.audio, res.sample_rate, params.sample_rate), params.sample_rate)
        entries.append(
            {
                "path": rel,
                "kind": kind,
                "split": split,
                "text": text,
                "voice": f"espeak:{voice}",
                "speaker": speaker,
                "engine": "espeak",
                "duration_s": 1.0,
            }
        )
    (root / "index.json").write_text(
        json.dumps(
            {"version": 1, "entries": entries, "voices": {}, "speakers": {"espeak+adam": "val", "espeak+Alex": "train"}}
        )
    )
    return build


PLAN = HeldoutPlan("val", speech_hours=0.01, noise_hours=0.02, seed=7, batch_utterances=24)
CFG = StreamConfig(keywords_per_stream=2, negative_stream_s=30.0)


def test_heldout_streams_have_the_promised_groups(sources_build, params):
    streams = list(heldout_source("computer", sources_build, params, PLAN, CFG)())
    groups = {}
    for s in streams:
        groups.setdefault(s.group, []).append(s)
        duration_s = len(s.audio) / params.sample_rate
        assert s.audio.dtype == np.float32 and np.all(np.isfinite(s.audio)) and np.max(np.abs(s.audio)) <= 1.0
        assert all(0 <= a < b <= duration_s for a, b in s.keyword_spans)
    assert set(groups) == {"clean", "noisy 10 dB", "speech", "speech + noise", "noise"}
    # Only the two val keyword takes: the training speaker's take is left out.
    assert sum(len(s.keyword_spans) for s in groups["clean"]) == 2
    assert sum(len(s.keyword_spans) for s in groups["noisy 10 dB"]) == 2
    for g in ("speech", "speech + noise", "noise"):
        assert all(not s.keyword_spans for s in groups[g])
    noise_s = sum(len(s.audio) for s in groups["noise"]) / params.sample_rate
    assert noise_s == pytest.approx(PLAN.noise_hours * 3600, abs=CFG.negative_stream_s)
    rendered_s = sum(len(s.audio) for s in groups["speech + noise"]) / params.sample_rate
    assert rendered_s >= PLAN.speech_hours * 3600
    # The first streams come out first (parity takes real speech from there): positives lead.
    assert streams[0].positive


def test_heldout_streams_are_deterministic(sources_build, params):
    a = list(heldout_source("computer", sources_build, params, PLAN, CFG)())
    b = list(heldout_source("computer", sources_build, params, PLAN, CFG)())
    assert [s.name for s in a] == [s.name for s in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.audio, y.audio)


def test_missing_sources_is_one_clear_error(tmp_path, params):
    with pytest.raises(CalibrationDataError, match="run `make data`"):
        heldout_source("computer", tmp_path, params, PLAN, CFG)


def test_real_negatives_come_out_clean_and_over_noise(sources_build, params, tmp_path):
    """Real negative files (one long, one short, one corrupt) -> both real groups, no spans,
    the long file cut to the stream length, the corrupt one skipped."""
    from dataclasses import replace

    from export.heldout import REAL_GROUPS, RealNegatives
    from train.audio_io import write_wav

    rng = np.random.default_rng(3)
    write_wav(
        tmp_path / "long.wav",
        (0.1 * rng.standard_normal(params.sample_rate * 70)).astype(np.float32),
        params.sample_rate,
    )
    write_wav(
        tmp_path / "short.wav",
        (0.1 * rng.standard_normal(params.sample_rate * 2)).astype(np.float32),
        params.sample_rate,
    )
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really")
    real = RealNegatives(tuple(sorted(tmp_path.glob("*.wav"))), (str(tmp_path),))
    plan = replace(PLAN, speech_hours=0.0, noise_hours=0.0, real=real)
    streams = [s for s in heldout_source("computer", sources_build, params, plan, CFG)() if s.group in REAL_GROUPS]
    for group in REAL_GROUPS:
        mine = [s for s in streams if s.group == group]
        total_s = sum(len(s.audio) for s in mine) / params.sample_rate
        assert 72.0 <= total_s <= 72.0 + 4 * CFG.gap_max_s and not any(s.keyword_spans for s in mine)
        assert all(len(s.audio) <= (CFG.negative_stream_s + 10) * params.sample_rate for s in mine)
    clean = [s for s in streams if s.group == REAL_GROUPS[0]]
    noisy = [s for s in streams if s.group == REAL_GROUPS[1]]
    assert not np.array_equal(clean[0].audio, noisy[0].audio)  # the noise is really there


def test_export_calibrates_on_real_negatives_and_says_so(sources_build, params, tmp_path):
    """The whole export with a folder of real negative audio: the stored threshold is chosen on
    the real groups, the synthetic choice is reported beside it, and the model records it."""
    import json
    import shutil
    from dataclasses import replace

    from export.config import ExportConfig
    from export.pipeline import run
    from export.report import write_report
    from tests.export.test_metadata import load_like_the_device
    from tests.toymodels import write_tone_checkpoint
    from train.audio_io import write_wav

    build = tmp_path / "build" / "computer"
    shutil.copytree(sources_build / "sources", build / "sources")
    write_tone_checkpoint(build / "train" / "best.pt", keyword="computer")
    real = tmp_path / "living-room"
    real.mkdir()
    rng = np.random.default_rng(5)
    for i in range(3):
        write_wav(
            real / f"{i}.wav",
            (0.05 * rng.standard_normal(params.sample_rate * 40)).astype(np.float32),
            params.sample_rate,
        )
    xc = ExportConfig(
        real_negative_dirs=(str(real),),
        bundled_speech=False,  # the living room alone (the bundle: tests/export/test_real_calibration.py)
        real_basis="real",
        real_min_hours=0.01,
        speech_hours=0.01,
        noise_hours=0.02,
        int8=False,
        bench_steps=3,
        parity_streams=1,
        parity_max_s=2.0,
    )
    cfg = {"streams": {"keywords_per_stream": 2, "negative_stream_s": 30.0}}
    result = run("computer", build, cfg, xc)
    meta = load_like_the_device(build / "model.onnx")
    assert meta.calibration["basis"] == ["real speech", "real speech + noise"]
    assert meta.calibration["basis_hours"] == pytest.approx(2 * 120 / 3600, rel=0.05)
    assert meta.calibration["real_negatives"] == {
        "files": 3,
        "folders": [str(real)],
        "shared_speakers": [],
        "noise_files": 0,
    }
    assert meta.threshold == result.calibration.threshold
    report = write_report(result, build / "export", "make export")
    text = report.read_text()
    assert "stand on **0.07 h** of negative audio: real speech, real speech + noise" in text
    assert "Chosen on the synthetic streams alone" in text
    data = json.loads((build / "export" / "report.json").read_text())
    synthetic = [g for g in meta.calibration["negative_hours_by_group"] if not g.startswith("real")]
    assert "noise" in synthetic and data["calibration"]["other_bases"]["synthetic"]["basis"] == synthetic
    # Pooled (the default), or without enough real hours: every group chooses together.
    run("computer", build, cfg, replace(xc, real_basis="pooled"))
    assert load_like_the_device(build / "model.onnx").calibration["basis"] == synthetic + [
        "real speech",
        "real speech + noise",
    ]
