"""Other wake-word engines on the same WAVs, in the same run (``make bench PEERS=1``).

Each peer lives in its own virtual environment under ``build/peers/<name>/`` (made on first
use with the ordinary ``pip``; nothing of theirs enters the project's environment) and runs
through :mod:`bench.peer_runner` as a subprocess, fed the very WAVs the daemon played.

- **Porcupine 1.9.5** (``pvporcupine``): the last version whose built-in keywords need no access
  key; installed with ``--no-deps`` plus numpy. It gives detections, not scores, so its DET curve
  comes from one pass per sensitivity (all sensitivities in one process, one engine each); the
  device's refractory period is applied to its detections so both sides count alike.
- **openWakeWord 0.5.1** and **pymicro-wakeword 2.5.0** ship their models in the wheel, but none
  for "computer": for a keyword they have, their scores are swept like ours; otherwise only their
  cost is measured (with a model they have: the cost barely depends on the keyword).

CPU per audio hour is measured like the daemon's: a run over ``cost_audio_s`` of audio at one
setting, minus a start-up run, from the kernel's accounting of the child.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench import accuracy, daemon
from bench.testsets import TestAudio
from device.decision import DecisionConfig

log = logging.getLogger(__name__)

RUNNER = Path(__file__).resolve().parent / "peer_runner.py"


class PeerError(RuntimeError):
    """A peer engine failed while running (one line)."""


@dataclass(frozen=True)
class Peer:
    name: str
    """Label in the report (with the version)."""
    engine: str
    """``peer_runner`` engine."""
    engine_packages: tuple[str, ...]
    """The engine itself, installed with ``--no-deps`` (its declared dependencies pull in more than
    it needs, e.g. a tflite runtime next to onnxruntime)."""
    runtime_packages: tuple[str, ...]
    """What it really needs, installed normally (with their own dependencies)."""
    keywords: frozenset[str]
    """Built-in keywords (lower case, spaces)."""
    scores: bool
    """True: per-frame scores (swept like ours); False: detections per sensitivity."""


PEERS = (
    Peer(
        "porcupine 1.9.5",
        "porcupine",
        ("pvporcupine==1.9.5",),
        ("numpy",),
        frozenset(
            {
                "alexa",
                "americano",
                "blueberry",
                "bumblebee",
                "computer",
                "grapefruit",
                "grasshopper",
                "hey google",
                "hey siri",
                "jarvis",
                "ok google",
                "picovoice",
                "porcupine",
                "terminator",
            }
        ),
        False,
    ),
    Peer(
        "openwakeword 0.5.1",
        "openwakeword",
        ("openwakeword==0.5.1",),
        ("numpy", "onnxruntime", "scipy", "scikit-learn", "tqdm"),
        frozenset({"alexa", "hey jarvis", "hey mycroft", "hey rhasspy", "timer", "weather"}),
        True,
    ),
    Peer(
        "pymicro-wakeword 2.5.0",
        "pymicro",
        ("pymicro-wakeword==2.5.0",),
        ("pymicro-features>=2,<3", "numpy"),
        frozenset({"alexa", "hey jarvis", "hey mycroft", "okay nabu"}),
        True,
    ),
)


def ensure_venv(root: Path, peer: Peer) -> Path:
    """``root/<engine>/bin/python`` with the peer's packages (installed once; re-used while the
    package list is unchanged)."""
    venv = root / peer.engine
    python = venv / "bin" / "python"
    marker = venv / "installed.json"
    wanted = {"engine (--no-deps)": list(peer.engine_packages), "runtime": list(peer.runtime_packages)}
    if python.is_file() and marker.is_file() and json.loads(marker.read_text()) == wanted:
        return python
    log.info("installing %s into %s", ", ".join(peer.engine_packages + peer.runtime_packages), venv)
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(venv)],
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", *peer.engine_packages],
        [str(python), "-m", "pip", "install", "--quiet", *peer.runtime_packages],
    ]
    for argv in steps:
        proc = subprocess.run(argv, capture_output=True, text=True)
        if proc.returncode != 0:
            last = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()][-1:] or ["?"]
            raise PeerError(f"could not install {peer.name}: {last[0]}")
    marker.write_text(json.dumps(wanted))
    return python


def installed(python: Path) -> list[str]:
    """``pip freeze`` of a peer's environment (the exact versions, for the report)."""
    proc = subprocess.run([str(python), "-m", "pip", "freeze", "--quiet"], capture_output=True, text=True)
    return sorted(ln for ln in proc.stdout.splitlines() if "==" in ln)


def run_runner(
    python: Path,
    peer: Peer,
    keyword: str,
    wav: Path,
    log_path: Path,
    *,
    sensitivities: tuple[float, ...] = (0.5,),
    max_audio_s: float | None = None,
) -> tuple[list[dict], float, float]:
    """(JSON lines, CPU s, peak RSS MiB) of one runner process."""
    argv = [
        str(python),
        str(RUNNER),
        peer.engine,
        "--keyword",
        keyword,
        "--wav",
        str(wav),
        "--sensitivities",
        ",".join(f"{s:g}" for s in sensitivities),
    ]
    argv += ["--max-audio-s", f"{max_audio_s:g}"] if max_audio_s else []
    lines = []
    with open(log_path, "w") as err:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ, OMP_NUM_THREADS="1"),
        )
        assert proc.stdout is not None  # stdout=PIPE
        rss = daemon.PeakRss(proc.pid)
        try:
            for raw in proc.stdout:
                lines.append(json.loads(raw))
        except ValueError:
            proc.kill()
            raise PeerError(f"{peer.name} printed something that is not JSON on {wav.name}: {raw[:80]!r}") from None
        finally:
            peak_mb = rss.stop()
            cpu_s, _ = daemon.reap(proc)
    if proc.returncode != 0 or not lines or not lines[-1].get("done"):
        last = [ln for ln in log_path.read_text().splitlines() if ln.strip()][-1:] or ["(no message)"]
        raise PeerError(f"{peer.name} failed on {wav.name} (exit {proc.returncode}): {last[0]}")
    return lines[:-1], cpu_s, peak_mb


def _frames(lines: list[dict]) -> tuple[np.ndarray, float]:
    if not lines:
        return np.zeros(0), 0.0
    frame_s = lines[0]["frame_s"]
    total = max(round(ln["start_s"] / frame_s) + len(ln["probs"]) for ln in lines)
    probs = np.zeros(total)
    for ln in lines:
        i = round(ln["start_s"] / frame_s)
        probs[i : i + len(ln["probs"])] = ln["probs"]
    return probs, frame_s


def peer_accuracy(
    python: Path, peer: Peer, keyword: str, tests: list[TestAudio], bc, decision: DecisionConfig, run_dir: Path
) -> list[dict]:
    """The peer's DET curve per (voices, condition), like ours (same negatives, same counting)."""
    from bench.pipeline import set_row, swept_rows

    if peer.scores:
        streams = {}
        for t in tests:
            lines, _, _ = run_runner(python, peer, keyword, t.wav, run_dir / f"peer-{peer.engine}-{t.spec.slug}.log")
            probs, frame_s = _frames(lines)
            streams[t.wav.name] = accuracy.scored(t, probs, frame_s)
        return swept_rows(tests, streams, decision, bc)
    # detections only: one engine per sensitivity; "threshold" = 1 - sensitivity (higher: fewer detections)
    runs: dict[float, dict[str, list[float]]] = {1 - s: {} for s in bc.peer_sensitivities}
    for t in tests:
        lines, _, _ = run_runner(
            python,
            peer,
            keyword,
            t.wav,
            run_dir / f"peer-{peer.engine}-{t.spec.slug}.log",
            sensitivities=bc.peer_sensitivities,
        )
        for s in bc.peer_sensitivities:
            times = [ln["time_s"] for ln in lines if abs(ln["setting"] - s) < 1e-9]
            runs[1 - s][t.wav.name] = accuracy.refractory(times, decision.refractory_s)

    def at_setting(t: TestAudio, threshold: float) -> list[float]:
        key = min(runs, key=lambda k: abs(k - threshold))
        return runs[key][t.wav.name] if abs(key - threshold) < 1e-9 else []

    rows = []
    rng = np.random.default_rng(bc.seed)
    settings = np.array(sorted(runs), float)
    for source, condition in accuracy.keyword_sets(tests):
        s = accuracy.swept(tests, source, condition, at_setting, settings, bc, rng)
        side = accuracy.side_counts(tests, condition, [p.threshold for p in s.points], at_setting, bc.tolerance_s)
        row = set_row(source, condition, s.curve, s.points, side)
        for p in row["points"]:
            p["sensitivity"] = 1 - p["threshold"] if p["threshold"] < 1 else None
        rows.append(row)
    return rows


def peer_cpu(
    python: Path, peer: Peer, keyword: str, wav: Path, wav_s: float, audio_s: float, run_dir: Path
) -> tuple[float, float]:
    """(CPU s per audio hour at one setting with start-up subtracted, peak RSS MiB)."""
    audio_s = min(audio_s, wav_s)
    _, startup, _ = run_runner(python, peer, keyword, wav, run_dir / f"peer-{peer.engine}-cost0.log", max_audio_s=0.1)
    _, full, rss = run_runner(python, peer, keyword, wav, run_dir / f"peer-{peer.engine}-cost.log", max_audio_s=audio_s)
    return max(full - startup, 0.0) / audio_s * 3600, rss


def run_all(keyword: str, tests: list[TestAudio], build: Path, bc, decision: DecisionConfig, run_dir: Path) -> dict:
    """``{peer name: engine entry}`` for every peer. A peer that cannot be installed or fails is an
    entry with a note (and a warning), never the end of the benchmark."""
    root = Path(build).parent / "peers"
    out = {}
    for peer in PEERS:
        t0 = time.monotonic()
        try:
            out[peer.name] = run_peer(peer, keyword, tests, root, bc, decision, run_dir)
        except PeerError as exc:
            log.warning("%s", exc)
            out[peer.name] = {"kind": "peer", "sets": [], "note": f"not measured: {exc}"}
        log.info("%s done in %.0f s", peer.name, time.monotonic() - t0)
    return out


def run_peer(
    peer: Peer, keyword: str, tests: list[TestAudio], root: Path, bc, decision: DecisionConfig, run_dir: Path
) -> dict:
    python = ensure_venv(root, peer)
    longest = max(tests, key=lambda t: t.duration_s)
    if keyword.lower() not in peer.keywords:
        # no model for this keyword: its cost (nearly keyword-independent) with a model it has
        other = sorted(peer.keywords)[0]
        log.info("%s has no built-in %r model; measuring its cost with %r", peer.name, keyword, other)
        cpu, rss = peer_cpu(python, peer, other, longest.wav, longest.duration_s, bc.cost_audio_s, run_dir)
        return {
            "kind": "peer",
            "sets": [],
            "cpu_s_per_audio_hour": cpu,
            "max_rss_mb": rss,
            "packages": installed(python),
            "note": f"has no {keyword!r} model: only its cost is shown, measured with its {other!r} model "
            "on the same audio.",
        }
    cpu, rss = peer_cpu(python, peer, keyword, longest.wav, longest.duration_s, bc.cost_audio_s, run_dir)
    entry = {
        "kind": "peer",
        "sets": peer_accuracy(python, peer, keyword, tests, bc, decision, run_dir),
        "cpu_s_per_audio_hour": cpu,
        "max_rss_mb": rss,
        "packages": installed(python),
    }
    if not peer.scores:
        entry["note"] = (
            f"DET from one pass per sensitivity ({', '.join(f'{s:g}' for s in bc.peer_sensitivities)}); "
            f"the {decision.refractory_s:g} s refractory period applied to its detections; its C "
            "function is called on a numpy buffer (its Python wrapper's per-frame list conversion "
            "would add more CPU than the engine itself)."
        )
    return entry
