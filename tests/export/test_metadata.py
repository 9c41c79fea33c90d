"""Metadata travels inside the model file and comes back intact; bad files are refused in one line."""

from __future__ import annotations

import json

import onnx
import onnxruntime as ort
import pytest

from device import modelmeta
from device.modelmeta import ModelMeta, ModelMetaError, check_graph
from device.params import AudioParams
from export.onnx_export import with_meta, write_proto
from tests.toymodels import corrupt_model_copy, other_format_model, wrong_sample_rate_model


def load_like_the_device(path) -> ModelMeta:
    """What the daemon does before running a file: onnxruntime load, metadata, graph contract."""
    try:
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several types for a bad file
        raise ModelMetaError(f"{path} is not a readable ONNX model ({str(exc).splitlines()[0][:120]})") from None
    meta = ModelMeta.from_props(sess.get_modelmeta().custom_metadata_map, str(path))
    check_graph(meta, {i.name: i.shape for i in sess.get_inputs()}, [o.name for o in sess.get_outputs()], str(path))
    return meta


def test_metadata_round_trip(tiny_model, params):
    meta = load_like_the_device(tiny_model)
    assert meta.keyword == "tiny" and meta.params == params and meta.threshold == 0.7
    assert meta.model_version == "tiny-test" and meta.training == {"seed": 0}
    assert meta.calibration == {"target_fa_per_hour": 0.5}
    assert meta.stream == {"default_chunk_samples": params.chunk_samples}
    assert {"torch", "onnx", "onnxruntime", "opset"} <= set(meta.versions)
    props = ModelMeta(keyword="k", params=params, threshold=0.25, stream={"a": 1}).to_props()
    assert ModelMeta.from_props(props).stream == {"a": 1}
    assert ModelMeta.from_props(props).params.digest() == params.digest()


def test_graph_follows_the_contract(tiny_model, params):
    sess = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    inputs = {i.name: i.shape for i in sess.get_inputs()}
    outputs = [o.name for o in sess.get_outputs()]
    assert inputs[modelmeta.INPUT_AUDIO] == [1, "samples"]
    assert inputs["state_audio"] == [1, params.context_samples]
    assert outputs[0] == modelmeta.OUTPUT_PROBS
    assert {n[len("state_") :] for n in inputs if n.startswith("state_")} == {
        n[len("next_") :] for n in outputs if n.startswith("next_")
    }


def test_corrupted_model_is_refused(tiny_model, tmp_path):
    bad = corrupt_model_copy(tiny_model, tmp_path / "model.onnx")
    with pytest.raises(ModelMetaError, match="not a readable ONNX model") as err:
        load_like_the_device(bad)
    assert "\n" not in str(err.value)


def test_wrong_sample_rate_model_is_refused(tiny_model, tmp_path):
    bad = wrong_sample_rate_model(tiny_model, tmp_path / "model.onnx", sample_rate=8000)
    meta = ModelMeta.from_props(
        ort.InferenceSession(str(bad), providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map
    )
    assert meta.params.sample_rate == 8000  # the metadata alone is self-consistent ...
    with pytest.raises(ModelMetaError, match="8000 Hz.*does not describe this graph") as err:
        load_like_the_device(bad)  # ... but the graph was built for 16 kHz framing
    assert "\n" not in str(err.value)


def test_impossible_sample_rate_is_refused(tiny_model, tmp_path):
    from tests.toymodels import model_with_props

    bad_params = {**AudioParams().to_dict(), "sample_rate": 48000}  # 25 ms = 1200 samples > n_fft
    bad = model_with_props(tiny_model, tmp_path / "model.onnx", {modelmeta.KEY_AUDIO_PARAMS: json.dumps(bad_params)})
    with pytest.raises(ModelMetaError, match="bad audio parameters"):
        load_like_the_device(bad)


def test_other_format_version_is_refused(tiny_model, tmp_path):
    bad = other_format_model(tiny_model, tmp_path / "model.onnx", fmt=3)
    with pytest.raises(ModelMetaError, match="model format 3"):
        load_like_the_device(bad)
    old = other_format_model(tiny_model, tmp_path / "old.onnx", fmt=1)
    with pytest.raises(ModelMetaError, match="model format 1.*first version.*make train export"):
        load_like_the_device(old)


def test_a_broken_model_never_replaces_a_good_one(tiny_model, tmp_path, params):
    target = tmp_path / "model.onnx"
    target.write_bytes(tiny_model.read_bytes())
    before = target.read_bytes()
    proto = onnx.load(str(tiny_model))
    # Metadata that disagrees with the graph: the write must fail its smoke run and keep the old file.
    wrong = with_meta(proto, ModelMeta("tiny", AudioParams(sample_rate=8000), 0.5))
    with pytest.raises(ModelMetaError):
        write_proto(wrong, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # no temp file left behind
    # And a good one does replace it.
    write_proto(with_meta(proto, ModelMeta("tiny", params, 0.42)), target)
    assert load_like_the_device(target).threshold == 0.42
