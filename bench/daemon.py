"""Running the real daemon (``wakeword listen --input``) on a WAV, and reading what it prints.

Every accuracy, latency and cost figure of the benchmark comes through here, so they are the
figures of the program a Pi runs: its WAV reader, queue, resampler, engine, decision rule.
One process per WAV (hours of audio each), never one per clip.

The daemon's JSON lines (``device/cli.py``):

- ``{"time_s", "score"}`` per inference step (``--scores``): end of the step, max probability;
- ``{"start_s", "frame_s", "probs": [...]}`` per step (``--frame-scores``): every output frame;
- ``{"time_s", "score", "keyword"}`` per detection (``--json``), printed after its step's lines.

CPU time comes from the kernel's accounting of the finished child (``os.wait4``: user +
system seconds of the whole process, all threads). Peak memory is the child's ``VmHWM``
(``/proc/<pid>/status``), sampled while it runs: ``ru_maxrss`` would report this (large)
benchmark process instead, since Linux carries the high-water mark across fork and exec.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


class DaemonError(RuntimeError):
    """The daemon failed on a benchmark input (one line, with its own last message)."""


@dataclass
class DaemonOutput:
    """What one ``wakeword listen --input`` run printed, parsed."""

    frame_s: float = 0.0
    """Duration of one output frame (s); 0 when no frame scores were printed."""
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    """Per-frame probability, float32 ``[frames]``; frame ``i`` ends at ``(i + 1) * frame_s``."""
    step_ends_s: list[float] = field(default_factory=list)
    """End of each inference step (s of stream time), in order."""
    step_max: list[float] = field(default_factory=list)
    """Max probability of each step."""
    detections: list[tuple[float, float]] = field(default_factory=list)
    """``(time_s, score)`` of each detection, ``time_s`` = end of the frame that fired."""
    reported_at_s: list[float] = field(default_factory=list)
    """For each detection, the end of the inference step that reported it (s of stream time):
    a live daemon acts on a detection only once that step's audio has arrived."""


def parse_lines(lines: Iterable[str]) -> DaemonOutput:
    """Parse the daemon's stdout (JSON lines; anything else is an error naming the line)."""
    out = DaemonOutput()
    chunks: list[tuple[int, list[float]]] = []
    for n, raw in enumerate(lines, 1):
        raw = raw.strip()
        if not raw:
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError:
            raise DaemonError(f"daemon output line {n} is not JSON: {raw[:80]!r}") from None
        if "probs" in obj:
            out.frame_s = float(obj["frame_s"])
            chunks.append((round(float(obj["start_s"]) / out.frame_s), obj["probs"]))
        elif "keyword" in obj:
            out.detections.append((float(obj["time_s"]), float(obj["score"])))
            out.reported_at_s.append(out.step_ends_s[-1] if out.step_ends_s else float(obj["time_s"]))
        elif "time_s" in obj and "score" in obj:
            out.step_ends_s.append(float(obj["time_s"]))
            out.step_max.append(float(obj["score"]))
        else:
            raise DaemonError(f"daemon output line {n} has an unknown shape: {raw[:80]!r}")
    if chunks:
        total = max(i + len(p) for i, p in chunks)
        probs = np.zeros(total, np.float32)
        for i, p in chunks:
            probs[i : i + len(p)] = p
        out.probs = probs
    return out


@dataclass(frozen=True)
class Usage:
    cpu_s: float
    """User + system CPU seconds of the daemon process (all its threads)."""
    max_rss_mb: float
    """Peak resident memory (MiB)."""
    wall_s: float


def wakeword_command() -> list[str]:
    """The ``wakeword`` console script of this environment (else ``python -m device.cli``)."""
    script = Path(sys.executable).with_name("wakeword")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "device.cli"]


def listen_argv(
    model: Path,
    wav: Path,
    config: Path | None = None,
    *,
    frame_scores: bool = False,
    scores: bool = False,
    detections: bool = True,
    infer_every_s: float | None = None,
    realtime: bool = False,
    max_audio_s: float | None = None,
) -> list[str]:
    argv = wakeword_command() + ["listen", "--model", str(model), "--input", str(wav)]
    argv += ["--config", str(config)] if config else []
    argv += ["--json"] if detections else []
    argv += ["--scores"] if scores else []
    argv += ["--frame-scores"] if frame_scores else []
    argv += ["--realtime"] if realtime else []
    argv += ["--infer-every-s", f"{infer_every_s:g}"] if infer_every_s else []
    argv += ["--max-audio-s", f"{max_audio_s:g}"] if max_audio_s else []
    return argv


class PeakRss:
    """Samples a child's ``VmHWM`` (peak resident memory of its own program) until stopped."""

    def __init__(self, pid: int, every_s: float = 0.05):
        self.path = Path(f"/proc/{pid}/status")
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every_s,), daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        try:
            for line in self.path.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    self.peak_kb = max(self.peak_kb, int(line.split()[1]))
        except (OSError, ValueError, IndexError):
            pass  # the process is gone (or not yet there)

    def _run(self, every_s: float) -> None:
        while not self._stop.wait(every_s):
            self._sample()

    def stop(self) -> float:
        """Stop sampling (call before reaping the child); returns the peak in MiB."""
        self._sample()
        self._stop.set()
        self._thread.join()
        return self.peak_kb / 1024


RUN_CPU = re.compile(r"stopped.*: .*, ([0-9.]+) CPU s$")


def run_cpu_s(stderr_path: Path) -> float | None:
    """The daemon's own CPU seconds from its first step to its last (the ``stopped: ...`` line
    ``listen`` logs at exit: start-up, imports and model loading are not in it), else None."""
    for line in reversed(Path(stderr_path).read_text(errors="replace").splitlines()):
        m = RUN_CPU.search(line.strip())
        if m:
            return float(m.group(1))
    return None


def reap(proc: subprocess.Popen) -> tuple[float, int]:
    """Wait for ``proc``; (user + system CPU seconds, exit status)."""
    _, status, ru = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_utime + ru.ru_stime, proc.returncode


def run(argv: list[str], stderr_path: Path) -> tuple[DaemonOutput, Usage]:
    """Run the daemon to the end of its input; parse stdout as it streams (hours of frame
    scores are never held as text). Raises :class:`DaemonError` on a non-zero exit."""
    stderr_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    t0 = time.monotonic()
    with open(stderr_path, "w") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, text=True, env=env)
        assert proc.stdout is not None  # stdout=PIPE
        rss = PeakRss(proc.pid)
        try:
            output = parse_lines(proc.stdout)
        except BaseException:
            proc.kill()
            raise
        finally:
            peak_mb = rss.stop()
            cpu_s, _ = reap(proc)
    usage = Usage(cpu_s, peak_mb, time.monotonic() - t0)
    if proc.returncode != 0:
        last = [ln for ln in stderr_path.read_text().splitlines() if ln.strip()][-1:] or ["(no message)"]
        raise DaemonError(f"`{' '.join(argv[-8:])}` exited with {proc.returncode}: {last[0]}")
    return output, usage
