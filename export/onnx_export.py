"""Write a :class:`~export.streaming.StreamingDetector` to ``model.onnx`` with its metadata.

The file is written to a temporary name beside the target, checked (onnx.checker, load in
onnxruntime, one step run), and only then renamed over the target: a good model is never
replaced by a broken one.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import torch

from device import modelmeta
from export.streaming import StreamingDetector
from device.fsutil import atomic_path

OPSET = 17


def to_onnx_bytes(det: StreamingDetector) -> bytes:
    """Trace the step function with batch 1 and a dynamic chunk length."""
    det = det.eval()
    audio = torch.zeros(1, det.frontend.params.chunk_samples)
    buf = _BytesSink()
    with torch.no_grad():
        torch.onnx.export(det, (audio, *det.initial_state()), buf,
                          input_names=det.input_names(), output_names=det.output_names(),
                          dynamic_axes={modelmeta.INPUT_AUDIO: {1: "samples"},
                                        modelmeta.OUTPUT_PROBS: {1: "frames"}},
                          opset_version=OPSET, dynamo=False)
    return buf.getvalue()


class _BytesSink:
    """Minimal file-like sink for torch.onnx.export (avoids a temp file for the raw graph)."""

    def __init__(self):
        self._parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


def write_model(det: StreamingDetector, meta: modelmeta.ModelMeta, path: str | os.PathLike) -> Path:
    """Export ``det`` with ``meta`` to ``path`` atomically; returns the path."""
    proto = onnx.load_from_string(to_onnx_bytes(det))
    props = dict(meta.to_props())
    versions = dict(meta.versions)
    versions.update({"torch": torch.__version__, "onnx": onnx.__version__, "opset": OPSET})
    props[modelmeta.KEY_VERSIONS] = json.dumps(versions, sort_keys=True)
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        _smoke_run(str(tmp), det.frontend.params.chunk_samples)
    return path


def _smoke_run(path: str, chunk_samples: int) -> None:
    """Load the written file in onnxruntime and run one step from zero state."""
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs()
             if i.name != modelmeta.INPUT_AUDIO}
    feeds[modelmeta.INPUT_AUDIO] = np.zeros((1, chunk_samples), np.float32)
    probs = sess.run([modelmeta.OUTPUT_PROBS], feeds)[0]
    if not np.all(np.isfinite(probs)):
        raise ValueError("exported model produced non-finite probabilities")
