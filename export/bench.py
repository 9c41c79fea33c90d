"""What one inference step costs: streaming with carried state vs re-running a whole window.

:func:`step_cost` is the measurement ``make export`` puts in its report and ``make bench`` may
call. Both ways produce the probabilities of the newest 0.5 s of audio on one onnxruntime
thread (``intra_op_num_threads=1``):

- *streaming*: one step of the stateful graph on the new chunk (the daemon's way);
- *window*: the same graph from zero state over the last ``window_s`` seconds (how a
  stateless model has to be run: every step repeats ``window_s / chunk`` times the work).

Wall time comes from ``time.perf_counter``, CPU time from ``time.process_time`` (the whole
process, which with one intra-op thread is the inference thread plus negligible overhead).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from device.engine import Engine


@dataclass(frozen=True)
class StepCost:
    model_bytes: int
    chunk_s: float
    steps: int
    stream_wall_ms: float
    """Median wall time of one streaming step (ms)."""
    stream_cpu_ms: float
    """Mean CPU time of one streaming step (ms)."""
    window_s: float
    window_wall_ms: float
    """Median wall time of one whole-window run (ms)."""
    window_cpu_ms: float
    """Mean CPU time of one whole-window run (ms)."""

    @property
    def stream_cpu_s_per_audio_hour(self) -> float:
        return self.stream_cpu_ms / 1000 * 3600 / self.chunk_s

    @property
    def window_cpu_s_per_audio_hour(self) -> float:
        return self.window_cpu_ms / 1000 * 3600 / self.chunk_s

    @property
    def speedup(self) -> float:
        return self.window_cpu_ms / self.stream_cpu_ms if self.stream_cpu_ms > 0 else float("nan")

    def to_dict(self) -> dict:
        return {
            **asdict(self),
            "stream_cpu_s_per_audio_hour": self.stream_cpu_s_per_audio_hour,
            "window_cpu_s_per_audio_hour": self.window_cpu_s_per_audio_hour,
            "speedup": self.speedup,
        }


def _timed(fn, repeats: int) -> tuple[float, float]:
    """(median wall ms, mean CPU ms) of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    walls = []
    cpu0 = time.process_time()
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
    cpu_ms = (time.process_time() - cpu0) / repeats * 1000
    return float(np.median(walls) * 1000), cpu_ms


def step_cost(model_path: str | os.PathLike, steps: int = 40, window_s: float = 10.0, seed: int = 0) -> StepCost:
    """Measure streaming vs whole-window cost per step of the model at ``model_path``.

    The audio is seeded noise: every operator in the graph is dense, so cost does not depend
    on what the audio contains.
    """
    stepper = Engine.load(model_path, threads=1)
    params = stepper.meta.params
    rng = np.random.default_rng(seed)
    chunks = (rng.standard_normal((steps + 1, params.chunk_samples)) * 0.05).astype(np.float32)
    it = iter(range(10**9))
    stream_wall, stream_cpu = _timed(lambda: stepper.step(chunks[next(it) % len(chunks)]), steps)

    window_samples = round(window_s * params.sample_rate) // params.output_hop_samples * params.output_hop_samples
    window = (rng.standard_normal(window_samples) * 0.05).astype(np.float32)
    window_repeats = max(3, steps // 4)

    def whole_window() -> None:
        stepper.reset()
        stepper.step(window)

    window_wall, window_cpu = _timed(whole_window, window_repeats)
    return StepCost(
        Path(model_path).stat().st_size,
        params.infer_every_s,
        steps,
        stream_wall,
        stream_cpu,
        window_samples / params.sample_rate,
        window_wall,
        window_cpu,
    )
