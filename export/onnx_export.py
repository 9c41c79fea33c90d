"""Write a :class:`~export.streaming.StreamingDetector` to ``model.onnx`` with its metadata.

Two steps, so a model can be calibrated *as exported* before its threshold is known:
:func:`export_graph` traces the step function once into an ONNX ``ModelProto``;
:func:`write_proto` stamps metadata on that same graph and writes it atomically. The file
is written to a temporary name beside the target, checked (onnx.checker, the graph against
its metadata, load in onnxruntime, one step run), and only then renamed over the target:
a good model is never replaced by a broken one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch

from device import modelmeta
from device.fsutil import atomic_path
from export.streaming import StreamingDetector

OPSET = 17


def export_graph(det: StreamingDetector) -> onnx.ModelProto:
    """Trace the step function with batch 1 and a dynamic chunk length (no metadata yet)."""
    det = det.eval()
    audio = torch.zeros(1, det.params.chunk_samples)
    with tempfile.TemporaryDirectory(prefix="wakeword-export-") as tmp, torch.no_grad(), warnings.catch_warnings():
        path = Path(tmp) / "graph.onnx"  # what torch.onnx.export documents for ``f``: a path
        # The GRU batch-size warning does not apply: batch is 1 and h0 is a graph input.
        warnings.filterwarnings("ignore", message=".*batch_size other than 1.*")
        # Shape checks inside nn.GRU freeze into constants: right, since state shapes are fixed.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        # The TorchScript exporter is deprecated, but it needs no onnxscript and maps nn.GRU to
        # a single ONNX GRU node.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            det,
            (audio, *det.initial_state()),
            path,
            input_names=det.input_names(),
            output_names=det.output_names(),
            dynamic_axes={modelmeta.INPUT_AUDIO: {1: "samples"}, modelmeta.OUTPUT_PROBS: {1: "frames"}},
            opset_version=OPSET,
            dynamo=False,
        )
        return onnx.load(path)


def graph_digest(proto: onnx.ModelProto) -> str:
    """Short hash of the graph alone (weights and ops, not metadata)."""
    return hashlib.sha256(proto.graph.SerializeToString(deterministic=True)).hexdigest()[:8]


def op_types(proto: onnx.ModelProto) -> list[str]:
    """Sorted ``domain:op`` of every node (``ai.onnx`` for the default domain)."""
    return sorted({f"{n.domain or 'ai.onnx'}:{n.op_type}" for n in proto.graph.node})


def tool_versions() -> dict:
    import onnxruntime

    return {
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "opset": OPSET,
    }


def with_meta(proto: onnx.ModelProto, meta: modelmeta.ModelMeta) -> onnx.ModelProto:
    """A copy of ``proto`` whose ``metadata_props`` are ``meta`` (tool versions added)."""
    out = onnx.ModelProto()
    out.CopyFrom(proto)
    props = meta.to_props()
    props[modelmeta.KEY_VERSIONS] = json.dumps({**tool_versions(), **meta.versions}, sort_keys=True)
    del out.metadata_props[:]
    onnx.helper.set_model_props(out, props)
    return out


def write_proto(proto: onnx.ModelProto, path: str | os.PathLike) -> Path:
    """Check ``proto`` (with its metadata) and write it to ``path`` atomically."""
    onnx.checker.check_model(proto)
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_bytes(proto.SerializeToString())
        smoke_run(tmp)
    return path


def write_model(det: StreamingDetector, meta: modelmeta.ModelMeta, path: str | os.PathLike) -> Path:
    """Export ``det`` with ``meta`` to ``path`` atomically; returns the path."""
    return write_proto(with_meta(export_graph(det), meta), path)


def smoke_run(path: str | os.PathLike) -> None:
    """Load a written file as the device would: metadata, graph contract, one step from zero state."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    meta = modelmeta.ModelMeta.from_props(sess.get_modelmeta().custom_metadata_map, str(path))
    modelmeta.check_graph(
        meta, {i.name: i.shape for i in sess.get_inputs()}, [o.name for o in sess.get_outputs()], str(path)
    )
    feeds = {i.name: np.zeros(i.shape, np.float32) for i in sess.get_inputs() if i.name != modelmeta.INPUT_AUDIO}
    feeds[modelmeta.INPUT_AUDIO] = np.zeros((1, meta.params.chunk_samples), np.float32)
    probs = sess.run([modelmeta.OUTPUT_PROBS], feeds)[0]
    if probs.shape != (1, meta.params.chunk_samples // meta.params.output_hop_samples):
        raise ValueError(f"exported model gave probs of shape {probs.shape} for one chunk")
    if not np.all(np.isfinite(probs)):
        raise ValueError("exported model produced non-finite probabilities")
