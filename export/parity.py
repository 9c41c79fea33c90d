"""Proof that the exported file computes what the trained model computes.

For each test signal (real speech in ``make export``), the PyTorch model's probabilities over
the whole signal in one pass are compared with onnxruntime's when the signal is streamed in
several chunkings (one pass, the daemon's 0.5 s, a single output frame, an odd multiple, and a
seeded random mix of sizes). Every difference must stay within ``tolerance``; otherwise the
export fails and the previous model file stays. The graph may use only standard ``ai.onnx``
operators, which every onnxruntime CPU build (x86_64 and aarch64 alike) implements.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass

import numpy as np

from device.engine import Engine
from export.scoring import stream_probs, torch_probs

log = logging.getLogger(__name__)

STANDARD_DOMAIN = "ai.onnx"


class ParityError(RuntimeError):
    """The exported model disagrees with PyTorch or with itself across chunk sizes."""


@dataclass(frozen=True)
class ParityResult:
    tolerance: float
    seconds_checked: float
    max_abs_diff: dict
    """Chunking name -> worst |onnx - torch| over all signals."""
    chunkings: dict
    """Chunking name -> chunk sizes in samples (a list used in turn; 0 = whole signal)."""

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff.values())

    def to_dict(self) -> dict:
        return {**asdict(self), "worst": self.worst}


def chunkings(chunk_samples: int, output_hop_samples: int, seed: int = 0) -> dict[str, list[int]]:
    """The chunk patterns checked: name -> sizes in samples, used in turn (``[0]`` = one pass)."""
    rng = np.random.default_rng(seed)
    mixed = (rng.integers(1, 2 * chunk_samples // output_hop_samples, size=7) * output_hop_samples).tolist()
    return {
        "one pass": [0],
        "daemon chunk": [chunk_samples],
        "one output frame": [output_hop_samples],
        "odd multiple": [7 * output_hop_samples],
        "random mix": mixed,
    }


def check_parity(
    det, model_path: str | os.PathLike, signals: list[np.ndarray], tolerance: float = 1e-4
) -> ParityResult:
    """Compare ``det`` (torch) with the file at ``model_path`` on ``signals``; raises ParityError."""
    stepper = Engine.load(model_path)
    params = stepper.meta.params
    plans = chunkings(params.chunk_samples, params.output_hop_samples)
    worst = {name: 0.0 for name in plans}
    seconds = 0.0
    for audio in signals:
        ref = torch_probs(det, audio)
        seconds += len(audio) / params.sample_rate
        for name, sizes in plans.items():
            got = stream_probs(stepper, audio, sizes)
            if got.shape != ref.shape:
                raise ParityError(f"{name}: onnx gave {got.shape[0]} frames, torch {ref.shape[0]}")
            worst[name] = max(worst[name], float(np.max(np.abs(got - ref), initial=0.0)))
    result = ParityResult(tolerance, seconds, worst, plans)
    log.info("parity over %.1f s of audio: worst |onnx - torch| = %.2g", seconds, result.worst)
    bad = {k: v for k, v in worst.items() if not v <= tolerance}
    if bad:
        raise ParityError(
            "exported model disagrees with PyTorch beyond "
            f"{tolerance:g}: " + ", ".join(f"{k} {v:.2g}" for k, v in bad.items())
        )
    return result


def check_operators(op_types: list[str]) -> None:
    """Only standard-domain operators (``domain:op`` strings); raises ParityError otherwise."""
    odd = [op for op in op_types if not op.startswith(STANDARD_DOMAIN + ":")]
    if odd:
        raise ParityError(f"graph uses non-standard operators {', '.join(odd)}; onnxruntime on the Pi may not run them")
