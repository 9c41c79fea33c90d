"""Run audio through an exported model exactly as the device does: chunk by chunk, state carried.

:class:`OnnxStepper` wraps one onnxruntime session of a ``model.onnx`` (the contract in
:mod:`device.modelmeta`); :func:`stream_probs` feeds it a whole signal in chunks of a chosen
size; :func:`torch_probs` is the PyTorch reference (the whole signal in one pass).
"""
from __future__ import annotations

import os
import numpy as np

from device import modelmeta


def session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session with ``threads`` intra-op threads and no inter-op pool."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


class OnnxStepper:
    """The streaming step function of one model file, with its carried state."""

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        self.session = session(path, threads)
        self.meta = modelmeta.ModelMeta.from_props(self.session.get_modelmeta().custom_metadata_map, str(path))
        self._state_shapes = {i.name: i.shape for i in self.session.get_inputs()
                              if i.name.startswith(modelmeta.STATE_IN_PREFIX)}
        self._outputs = [o.name for o in self.session.get_outputs()]
        self.reset()

    def reset(self) -> None:
        self.state = {name: np.zeros(shape, np.float32) for name, shape in self._state_shapes.items()}

    def step(self, chunk: np.ndarray) -> np.ndarray:
        """``chunk``: float32 ``[n]``, ``n`` a positive multiple of ``output_hop_samples``.

        Returns probabilities float32 ``[n // output_hop_samples]`` and advances the state.
        """
        feeds = dict(self.state)
        feeds[modelmeta.INPUT_AUDIO] = np.ascontiguousarray(chunk, np.float32)[None, :]
        results = dict(zip(self._outputs, self.session.run(self._outputs, feeds)))
        for name in self.state:
            self.state[name] = results[modelmeta.STATE_OUT_PREFIX + name[len(modelmeta.STATE_IN_PREFIX):]]
        return results[modelmeta.OUTPUT_PROBS][0]


def usable(audio: np.ndarray, output_hop_samples: int) -> np.ndarray:
    """``audio`` cut to a whole number of output frames (the tail short of one is dropped)."""
    return audio[: len(audio) - len(audio) % output_hop_samples]


def stream_probs(stepper: OnnxStepper, audio: np.ndarray, chunk_samples: int | list[int]) -> np.ndarray:
    """Probabilities float32 ``[frames]`` of ``audio`` fed from zero state in chunks.

    ``chunk_samples``: one size (the last chunk may be shorter) or a list of sizes used in
    turn, each a multiple of ``output_hop_samples``; ``0`` feeds the whole signal in one call.
    The state is reset first.
    """
    hop = stepper.meta.params.output_hop_samples
    audio = usable(np.asarray(audio, np.float32), hop)
    sizes = [chunk_samples] if isinstance(chunk_samples, int) else list(chunk_samples)
    if sizes == [0]:
        sizes = [max(len(audio), hop)]
    if any(n <= 0 or n % hop for n in sizes):
        raise ValueError(f"chunk sizes must be positive multiples of {hop} samples, got {sizes}")
    stepper.reset()
    out, start, k = [], 0, 0
    while start < len(audio):
        n = sizes[k % len(sizes)]
        out.append(stepper.step(audio[start:start + n]))
        start, k = start + n, k + 1
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def torch_probs(det, audio: np.ndarray) -> np.ndarray:
    """PyTorch reference: the whole signal in one pass from zero state -> float32 ``[frames]``."""
    import torch

    hop = det.frontend.params.output_hop_samples
    x = torch.from_numpy(usable(np.asarray(audio, np.float32), hop).copy())[None]
    with torch.no_grad():
        probs = det.eval()(x, *det.initial_state())[0]
    return probs[0].numpy()
