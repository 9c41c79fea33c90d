"""The onnxruntime engine: runs the real tone model, carries state, and refuses every model
it could not run correctly with one line (and exit status 3 from the command line)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest

from bench.tonemodel import tone_clip
from device import modelmeta
from device.engine import Engine, EngineError
from export.scoring import stream_probs
from tests.device.daemon_helpers import PARAMS, run_wakeword
from tests.toymodels import corrupt_model_copy, model_with_props, other_format_model, wrong_sample_rate_model


@pytest.fixture(scope="module")
def engine(tone_model) -> Engine:
    return Engine.load(tone_model)


def test_tone_model_fires_after_the_tone_and_not_before(engine):
    assert engine.meta.keyword == "tone" and engine.params == PARAMS
    audio = tone_clip(4.0, [1.5], seed=7)
    probs = stream_probs(engine, audio, [PARAMS.chunk_samples])
    assert probs.shape == (len(audio) // PARAMS.output_hop_samples,)
    t = (np.arange(len(probs)) + 1) * PARAMS.output_hop_s
    assert probs[t < 1.5].max() < 0.1
    assert probs[(t > 1.9) & (t < 2.3)].max() > 0.9


def test_probabilities_do_not_depend_on_chunking(engine):
    audio = tone_clip(3.2, [1.0], seed=8)  # 40 output frames
    hop = PARAMS.output_hop_samples
    whole = stream_probs(engine, audio, [len(audio)])
    for sizes in ([hop], [PARAMS.chunk_samples], [3 * hop, 17 * hop, hop, 40 * hop]):
        np.testing.assert_allclose(stream_probs(engine, audio, sizes), whole, atol=2e-5)


def test_reset_returns_to_the_start_of_a_stream(engine):
    audio = tone_clip(2.0, [0.5], seed=9)
    a = stream_probs(engine, audio, [PARAMS.chunk_samples])
    engine.step(tone_clip(1.0, [0.0], seed=10)[: PARAMS.chunk_samples])  # dirty the state
    b = stream_probs(engine, audio, [PARAMS.chunk_samples])  # stream_probs resets first
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_step_refuses_a_partial_output_hop(engine):
    with pytest.raises(ValueError, match="multiple of"):
        engine.step(np.zeros(PARAMS.output_hop_samples + 1, np.float32))


# -- models the daemon must refuse ------------------------------------------------------
def bad_models(tone_model: Path, d: Path) -> dict[str, tuple[Path, str]]:
    """name -> (file, a fragment the one-line message must contain)."""
    (d / "garbage.onnx").write_bytes(b"this is not a model\n" * 50)
    proto = onnx.load(str(tone_model))
    del proto.metadata_props[:]  # a valid ONNX graph, but not a wakeword model
    onnx.save(proto, str(d / "plain.onnx"))
    return {
        "missing": (d / "nope.onnx", "does not exist"),
        "truncated": (corrupt_model_copy(tone_model, d / "truncated.onnx", 0.3), "not a readable ONNX model"),
        "garbage": (d / "garbage.onnx", "not a readable ONNX model"),
        "format": (other_format_model(tone_model, d / "format3.onnx", 3), "model format 3"),
        "old_format": (other_format_model(tone_model, d / "format1.onnx", 1), "model format 1"),
        "no_meta": (d / "plain.onnx", "not a wakeword model"),
        "rate": (wrong_sample_rate_model(tone_model, d / "rate8k.onnx", 8000), "the metadata does not"),
        # same audio context, so only the probe step can tell: 6 frames per step, not 12
        "stride": (
            model_with_props(
                tone_model,
                d / "stride4.onnx",
                {modelmeta.KEY_AUDIO_PARAMS: dataclasses.replace(PARAMS, output_stride=4).to_json()},
            ),
            "graph gives 6 output frames for 7680 samples, its metadata promises 12",
        ),
    }


def test_engine_refuses_bad_models_with_one_line(tone_model, tmp_path):
    for name, (path, fragment) in bad_models(tone_model, tmp_path).items():
        with pytest.raises(EngineError) as exc:
            Engine.load(path)
        msg = str(exc.value)
        assert fragment in msg and "\n" not in msg and str(path) in msg, (name, msg)


@pytest.mark.parametrize("name", ["truncated", "format", "rate"])
def test_cli_refuses_bad_models_with_one_line_and_status_3(tone_model, tmp_path, clips, name):
    path, fragment = bad_models(tone_model, tmp_path)[name]
    r = run_wakeword(["listen", "--model", str(path), "--input", str(clips["pos"]), "--json"])
    assert r.returncode == 3
    errors = [line for line in r.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and fragment in errors[0], r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""


def test_decision_settings_come_from_the_model_calibration_unless_configured(engine):
    from device.config import DetectConfig

    meta = dataclasses.replace(engine.meta, calibration={"decision": {"smoothing_frames": 3, "refractory_s": 4.0}})
    d = DetectConfig().resolve(meta)
    assert (d.threshold, d.smoothing_frames, d.refractory_s) == (meta.threshold, 3, 4.0)
    d = DetectConfig(threshold=0.7, refractory_s=1.0).resolve(meta)
    assert (d.threshold, d.smoothing_frames, d.refractory_s) == (0.7, 3, 1.0)
    d = DetectConfig().resolve(dataclasses.replace(engine.meta, calibration={}))
    assert (d.smoothing_frames, d.refractory_s) == (1, 2.0)
