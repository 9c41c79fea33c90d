"""Running a ``model.onnx`` step function with onnxruntime, state carried between calls.

:meth:`Engine.load` refuses, with one line (:class:`EngineError`), any file the daemon
could not run correctly: missing, unreadable or not ONNX, metadata of another format or
invalid (:mod:`device.modelmeta`), a graph that does not follow the contract (names,
dtypes, static state shapes, :func:`device.modelmeta.check_graph`), or a graph whose output
frame rate disagrees with its own metadata -- a probe step of ``chunk_samples`` zeros must give exactly
``chunk_samples / output_hop_samples`` frames, which catches a model whose recorded sample
rate (or hop) is not the one it was built for.

One intra-op thread by default: a wake-word model is small, and on a Pi the other cores
belong to whatever else runs there.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

import numpy as np

from device import modelmeta
from device.modelmeta import ModelMeta, ModelMetaError
from device.params import AudioParams

log = logging.getLogger(__name__)

_FLOAT = "tensor(float)"


class EngineError(RuntimeError):
    """A model file this daemon cannot run; the message is one plain line."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def session_options(threads: int = 1):
    """The daemon's onnxruntime options: ``threads`` intra-op threads, no spinning, no memory arena."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    # No busy-waiting worker threads: they burn CPU between the 0.48 s steps.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Plain malloc and no memory arena: a live step covers whatever audio arrived, so its length
    # varies (a backlog after a stall is seconds long), and with the arena each new length grew it
    # for good (13 -> 29 MiB over 40 rounds of random backlogs, against ~0.1 MiB without). The
    # per-shape memory plans stay on: they keep ~8 KiB per step length (bounded by [capture]
    # stale_after_s, levelled off after 20 rounds) and save 3-6 % of the daemon's CPU; two-hour soaks
    # with them passed (docs/soak.md). python -m bench.stepmemory measures all three settings.
    opts.enable_cpu_mem_arena = False
    opts.enable_mem_pattern = True
    return opts


class Engine:
    """Stateful step function: :meth:`step` audio chunks, :meth:`reset` to start over."""

    def __init__(self, session, meta: ModelMeta, path: str):
        self._session = session
        self.meta = meta
        self.path = path
        self._state_inputs: dict[str, tuple[int, ...]] = {}
        self._state_outputs: dict[str, str] = {}  # next_<x> -> state_<x>
        self._check_graph()
        self._output_names = [modelmeta.OUTPUT_PROBS, *self._state_outputs]
        self.reset()
        self._probe()

    @property
    def params(self) -> AudioParams:
        return self.meta.params

    @classmethod
    def load(cls, path: str | os.PathLike, threads: int = 1, opts=None) -> Engine:
        """``opts``: onnxruntime session options (default :func:`session_options` of ``threads``)."""
        import onnxruntime as ort

        path = str(path)
        if not Path(path).is_file():
            raise EngineError(f"model {path} does not exist")
        opts = opts if opts is not None else session_options(threads)
        try:
            session = ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several unrelated types for a bad file
            raise EngineError(f"model {path} is not a readable ONNX model ({_first_line(exc)})") from None
        try:
            meta = ModelMeta.from_props(session.get_modelmeta().custom_metadata_map, source=f"model {path}")
        except ModelMetaError as exc:
            raise EngineError(str(exc)) from None
        return cls(session, meta, path)

    def _check_graph(self) -> None:
        where = f"model {self.path}"
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name: o for o in self._session.get_outputs()}
        if modelmeta.INPUT_AUDIO not in inputs or modelmeta.OUTPUT_PROBS not in outputs:
            raise EngineError(
                f"{where} does not follow the wakeword graph contract (needs input "
                f"{modelmeta.INPUT_AUDIO!r} and output {modelmeta.OUTPUT_PROBS!r})"
            )
        for name, arg in inputs.items():
            if arg.type != _FLOAT:
                raise EngineError(f"{where}: input {name!r} is {arg.type}, expected float32")
            if name == modelmeta.INPUT_AUDIO:
                continue
            if not name.startswith(modelmeta.STATE_IN_PREFIX):
                raise EngineError(
                    f"{where}: unexpected input {name!r} (only {modelmeta.INPUT_AUDIO!r} "
                    f"and {modelmeta.STATE_IN_PREFIX}* are allowed)"
                )
            out = modelmeta.STATE_OUT_PREFIX + name[len(modelmeta.STATE_IN_PREFIX) :]
            if out not in outputs:
                raise EngineError(f"{where}: state input {name!r} has no {out!r} output")
            if not all(isinstance(d, int) and d > 0 for d in arg.shape):
                raise EngineError(f"{where}: state input {name!r} has no static shape ({arg.shape})")
            self._state_inputs[name] = tuple(arg.shape)
            self._state_outputs[out] = name
        try:
            modelmeta.check_graph(self.meta, {n: list(a.shape) for n, a in inputs.items()}, list(outputs), source=where)
        except ModelMetaError as exc:
            raise EngineError(str(exc)) from None

    def _probe(self) -> None:
        p = self.params
        probs = self.step(np.zeros(p.chunk_samples, np.float32))
        want = p.chunk_samples // p.output_hop_samples
        self.reset()
        if probs.shape != (want,):
            raise EngineError(
                f"model {self.path}: graph gives {probs.size} output frames for {p.chunk_samples} samples, "
                f"its metadata promises {want} (sample rate {p.sample_rate} Hz, output hop "
                f"{p.output_hop_samples} samples); the metadata does not match the graph, re-export it"
            )
        if not np.all(np.isfinite(probs)):
            raise EngineError(f"model {self.path}: the probe step gives non-finite probabilities")

    def fork(self) -> Engine:
        """Another engine on the same loaded model (one onnxruntime session, thread-safe to run)
        with its own state: one per audio stream, e.g. per Wyoming client."""
        twin = copy.copy(self)
        twin.reset()  # a fresh state dict: nothing mutable is shared but the session
        return twin

    def reset(self) -> None:
        """Back to the all-zeros state (the start of a stream)."""
        self._state = {n: np.zeros(s, np.float32) for n, s in self._state_inputs.items()}

    def step(self, audio: np.ndarray) -> np.ndarray:
        """``audio``: float32 ``[n]`` mono at ``params.sample_rate``, ``n`` a positive multiple of
        ``params.output_hop_samples``. Returns float32 ``[n / output_hop_samples]`` probabilities."""
        n = audio.shape[-1]
        if n == 0 or n % self.params.output_hop_samples:
            raise ValueError(f"step needs a positive multiple of {self.params.output_hop_samples} samples, got {n}")
        feeds = dict(self._state)
        feeds[modelmeta.INPUT_AUDIO] = np.ascontiguousarray(audio, dtype=np.float32).reshape(1, n)
        outs = self._session.run(self._output_names, feeds)
        for name, value in zip(self._output_names[1:], outs[1:]):
            self._state[self._state_outputs[name]] = value
        return outs[0].reshape(-1)
