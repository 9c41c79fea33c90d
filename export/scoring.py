"""Run audio through an exported model exactly as the device does: chunk by chunk, state carried.

The model file is stepped by the daemon's own :class:`device.engine.Engine` (same session
options, same checks); :func:`stream_probs` feeds it a whole signal in chunks of a chosen
size; :func:`torch_probs` is the PyTorch reference (the whole signal in one pass).
"""

from __future__ import annotations

import numpy as np

from device.engine import Engine


def usable(audio: np.ndarray, output_hop_samples: int) -> np.ndarray:
    """``audio`` cut to a whole number of output frames (the tail short of one is dropped)."""
    return audio[: len(audio) - len(audio) % output_hop_samples]


def stream_probs(stepper: Engine, audio: np.ndarray, chunk_samples: int | list[int]) -> np.ndarray:
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
        out.append(stepper.step(audio[start : start + n]))
        start, k = start + n, k + 1
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def torch_probs(det, audio: np.ndarray) -> np.ndarray:
    """PyTorch reference: the whole signal in one pass from zero state -> float32 ``[frames]``."""
    import torch

    hop = det.params.output_hop_samples
    x = torch.from_numpy(usable(np.asarray(audio, np.float32), hop).copy())[None]
    with torch.no_grad():
        probs = det.eval()(x, *det.initial_state())[0]
    return probs[0].numpy()
