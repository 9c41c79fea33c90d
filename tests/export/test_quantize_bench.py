"""The int8 variant (front end kept float32) and the step-cost measurement, on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from device.engine import Engine
from device.modelmeta import ModelMeta
from export.bench import step_cost
from export.calib_streams import CalibrationDataError, folder_source, replayed
from export.onnx_export import op_types
from export.parity import check_operators
from export.quantize import frontend_nodes, quantize_int8
from export.scoring import stream_probs


def test_int8_quantizes_the_network_but_not_the_front_end(tiny_model, tmp_path, speech, params):
    out = tmp_path / "model.int8.onnx"
    quantized = quantize_int8(tiny_model, out)
    assert quantized  # the front end's convolutions and the head's output MatMul
    proto = onnx.load(str(out))
    check_operators(op_types(proto))
    front = frontend_nodes(proto)
    assert len(front) == 2 and all(n.op_type in ("Conv", "MatMul") for n in proto.graph.node if n.name in front)
    assert ModelMeta.from_props({p.key: p.value for p in proto.metadata_props}).keyword == "tiny"
    fp32 = stream_probs(Engine.load(tiny_model), speech, params.chunk_samples)
    int8 = stream_probs(Engine.load(out), speech, params.chunk_samples)
    assert int8.shape == fp32.shape
    assert 0 < np.max(np.abs(int8 - fp32)) < 0.2  # really quantized, still the same model


def test_step_cost_measures_both_ways(tiny_model, params):
    cost = step_cost(tiny_model, steps=5, window_s=4.0)
    d = cost.to_dict()
    assert d["model_bytes"] == tiny_model.stat().st_size
    assert d["chunk_s"] == params.infer_every_s and d["window_s"] == pytest.approx(4.0)
    for key in ("stream_wall_ms", "stream_cpu_ms", "window_wall_ms", "window_cpu_ms"):
        assert d[key] > 0, key
    assert d["stream_cpu_s_per_audio_hour"] == pytest.approx(d["stream_cpu_ms"] / 1000 * 3600 / params.infer_every_s)
    json.dumps(d)


def test_folder_source_reads_labels_and_resamples(tmp_path, params):
    import soundfile as sf

    (tmp_path / "speech").mkdir()
    sf.write(tmp_path / "speech" / "a.wav", np.zeros((48000, 2), np.float32), 48000)  # 1 s stereo 48 kHz
    sf.write(tmp_path / "kw.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "kw.wav.label.json").write_text(
        json.dumps({"version": 1, "kind": "keyword", "keyword_spans": [[0.2, 0.6]]})
    )
    streams = list(folder_source(tmp_path, params)())
    by_name = {s.name: s for s in streams}
    assert by_name["speech/a.wav"].group == "speech" and not by_name["speech/a.wav"].positive
    assert len(by_name["speech/a.wav"].audio) == params.sample_rate
    assert by_name["kw.wav"].keyword_spans == [(0.2, 0.6)] and by_name["kw.wav"].group == "keyword"
    with pytest.raises(CalibrationDataError, match="does not exist"):
        folder_source(tmp_path / "missing", params)
    # one label format, one parser: what `make label` would refuse, calibration refuses too
    (tmp_path / "kw.wav.label.json").write_text(json.dumps({"kind": "keyword", "keyword_spans": [[0.2, 0.6]]}))
    with pytest.raises(CalibrationDataError, match="version"):
        list(folder_source(tmp_path, params)())
    # a sidecar named after the stem alone is not read as a label: refused, not taken as negative audio
    (tmp_path / "kw.wav.label.json").unlink()
    (tmp_path / "kw.label.json").write_text(
        json.dumps({"version": 1, "kind": "keyword", "keyword_spans": [[0.2, 0.6]]})
    )
    with pytest.raises(CalibrationDataError, match="rename it to kw.wav.label.json"):
        list(folder_source(tmp_path, params)())


def test_calibration_audio_is_rendered_once_and_replayed(tmp_path):
    from train.streams import Stream

    passes = []

    def source():
        passes.append(1)
        rng = np.random.default_rng(0)  # the same streams each pass, as a real source makes them
        yield Stream(rng.uniform(-0.5, 0.5, 3000).astype(np.float32), [(0.01, 0.05)], "clean", "kw", [(0.0, 0.1)])
        yield Stream(rng.uniform(-0.5, 0.5, 2000).astype(np.float32), [], "speech", "neg")

    folder = tmp_path / "export" / "calibration-audio"
    folder.mkdir(parents=True)
    (folder / "000000.npz").write_text("left by a stopped export")
    with replayed(source, folder) as replay:
        next(iter(replay()))  # a partial pass (the parity check's) is not kept as the whole
        first = list(replay())
        again = list(replay())
        assert len(passes) == 2  # the partial pass and the first whole one; the third was replayed
        assert [(s.group, s.name, s.keyword_spans, s.ignore_spans) for s in again] == [
            ("clean", "kw", [(0.01, 0.05)], [(0.0, 0.1)]),
            ("speech", "neg", [], []),
        ]
        for a, b, original in zip(first, again, source()):
            assert np.array_equal(a.audio, b.audio)  # every pass scores the same (16-bit) audio
            assert np.max(np.abs(a.audio - original.audio)) <= 1 / 32767
    assert not folder.exists()
