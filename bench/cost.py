"""What running and making the model costs.

- Daemon: CPU seconds per hour of audio and peak RSS of ``wakeword listen --input`` on one
  onnxruntime thread (the default config), without any printing, at each inference step size.
  The figure is the daemon's own CPU count from its first step to its last (start-up, imports
  and model loading are outside it), the steady-state cost a Pi pays per hour; nothing is
  subtracted, so scheduling noise cannot drive it to zero.
- Model: file size; per-step time from :func:`export.bench.step_cost` (streaming vs re-running
  a 10 s window).
- Training and data: read from what those stages recorded (``train/last.pt`` and the dataset
  manifest), not measured again.
"""

from __future__ import annotations

import logging
from pathlib import Path

from bench import daemon

log = logging.getLogger(__name__)


# The daemon's count (time.process_time, the kernel's per-process CPU clock) is printed to 0.1 ms;
# below this much CPU in a whole run the figure is reported as not resolved rather than as a number.
MIN_RESOLVED_CPU_S = 0.005


def daemon_cpu(
    model: Path, wav: Path, wav_s: float, hop_s: float, audio_s: float, config: Path, run_dir: Path, tag: str = ""
) -> dict:
    """CPU s per audio hour and peak RSS of the daemon at step ``hop_s``.

    The steady-state CPU is the daemon's own count from its first step to its last (logged by
    ``listen`` at exit), so start-up is not in it and nothing is subtracted: a busy machine
    cannot turn the figure into zero. Too little audio to resolve it gives None and a note."""
    audio_s = min(audio_s, wav_s)
    tag = tag or f"{model.stem}-hop{hop_s:g}"
    log_path = run_dir / f"cost-{tag}.log"
    _, full = daemon.run(
        daemon.listen_argv(model, wav, config, detections=False, infer_every_s=hop_s, max_audio_s=audio_s), log_path
    )
    steady_s = daemon.run_cpu_s(log_path)
    if steady_s is None:
        raise daemon.DaemonError(f"the daemon did not log its CPU time at exit (see {log_path})")
    entry: dict[str, float | str | None] = {
        "hop_s": hop_s,
        "audio_s": audio_s,
        "cpu_s": full.cpu_s,
        "run_cpu_s": steady_s,
        "startup_cpu_s": max(full.cpu_s - steady_s, 0.0),
        "cpu_s_per_audio_hour": steady_s / audio_s * 3600,
        "max_rss_mb": full.max_rss_mb,
        "wall_s": full.wall_s,
        "realtime_factor": audio_s / full.wall_s if full.wall_s > 0 else float("nan"),
    }
    if steady_s < MIN_RESOLVED_CPU_S:
        entry["cpu_s_per_audio_hour"] = None
        entry["note"] = (
            f"{steady_s:.4f} CPU s over {audio_s:g} s of audio is below what the method resolves "
            f"({MIN_RESOLVED_CPU_S} s): use more audio ([bench] cost_audio_s)"
        )
    return entry


def keyword_costs(
    model: Path,
    counts: tuple[int, ...],
    wav: Path,
    wav_s: float,
    hop_s: float,
    audio_s: float,
    base_config: Path,
    run_dir: Path,
) -> list[dict]:
    """The daemon's CPU per audio hour and peak RSS with 1, 2, 4 ... keywords (``[[keywords]]``):
    copies of ``model`` under other keyword names, so each costs what a real second model would."""
    import onnx

    from device.fsutil import atomic_write_text
    from device.modelmeta import KEY_KEYWORD

    proto = onnx.load(str(model))
    props = {p.key: p.value for p in proto.metadata_props}
    keyword = props.get(KEY_KEYWORD, "keyword")
    base = base_config.read_text()
    out = []
    for n in counts:
        tables = []
        for i in range(1, n):
            copy = run_dir / f"keyword-copy-{i}.onnx"
            if not copy.exists():
                del proto.metadata_props[:]
                onnx.helper.set_model_props(proto, {**props, KEY_KEYWORD: f"{keyword}-copy{i}"})
                onnx.save(proto, str(copy))
            tables.append(f'\n[[keywords]]\nmodel = "{copy.resolve()}"\n')
        config = run_dir / f"daemon-cost-{n}-keywords.toml"
        atomic_write_text(config, base + "".join(tables))
        entry = daemon_cpu(model, wav, wav_s, hop_s, audio_s, config, run_dir, tag=f"{n}-keywords")
        out.append({"keywords": n, **entry})
    return out


def step_costs(models: dict[str, Path], steps: int) -> dict[str, dict]:
    """``export.bench.step_cost`` of each model file (size, ms per step, 10 s window)."""
    from export.bench import step_cost

    return {label: step_cost(path, steps=steps).to_dict() for label, path in models.items()}


def training_numbers(build: Path) -> dict:
    """Throughput and time of the training run (``train/last.pt``) and the data stage (manifest)."""
    out: dict = {}
    last = Path(build) / "train" / "last.pt"
    if last.is_file():
        try:
            from train import checkpoint

            ck = checkpoint.load(last)
            batch = int(ck.get("config", {}).get("train", {}).get("batch_size", 0))
            train_s, step = float(ck.get("train_s", 0.0)), int(ck.get("step", 0))
            out["training"] = {
                "step": step,
                "batch_size": batch,
                "train_s": train_s,
                "elapsed_min": float(ck.get("elapsed_s", 0.0)) / 60,
                "clips_per_s": step * batch / train_s if train_s else None,
                "best_step": (ck.get("best") or {}).get("step"),
                "source": str(last),
            }
        except Exception as exc:  # a checkpoint being written right now, another format: report, go on
            log.warning("could not read training numbers from %s: %s", last, exc)
    manifest = Path(build) / "dataset" / "manifest.json"
    if manifest.is_file():
        import json

        try:
            m = json.loads(manifest.read_text())
            thr, src = m.get("throughput") or {}, m.get("sources") or {}
            out["dataset"] = {
                "clips_per_s": thr.get("clips_per_s"),
                "renders_per_s": thr.get("renders_per_s"),
                "workers": thr.get("workers"),
                "total_s": thr.get("total_s"),
                "distinct_voices": src.get("distinct_voices"),
                "source": str(manifest),
            }
        except (OSError, ValueError) as exc:
            log.warning("could not read %s: %s", manifest, exc)
    return out
