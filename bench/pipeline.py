"""``make bench``, top to bottom.

1. The models: ``<build>/model.onnx`` (and ``model.int8.onnx`` when the export kept one).
2. The test audio (:mod:`bench.testsets`): held-out synthetic voices and, when present, the real
   recordings of ``../shared/data``; clean and in noise; cached WAVs.
3. Accuracy: each WAV through the daemon once (``wakeword listen --input --frame-scores``);
   DET curves and miss rates at the target false-accept rates (:mod:`bench.accuracy`), and the
   counts at the model's own calibrated threshold. A cross-check: the daemon's own detections
   must equal the decision rule applied to the frame scores it printed.
4. Latency (:mod:`bench.latency`): keyword end -> detection at each inference step size, and
   -> LED edge with the audio played in real time.
5. Cost (:mod:`bench.cost`): daemon CPU per audio hour and peak RSS per step size, per-step time,
   training and data throughput.
6. Peers (``--peers``, :mod:`bench.peers`): the same WAVs through other engines.
7. The report (:mod:`bench.report`): ``<build>/bench/report.md`` + ``report.json`` + PNGs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bench import accuracy, cost, daemon, latency, testsets
from bench.config import BenchConfig
from bench.testsets import TestAudio
from device.decision import DecisionConfig, detect

log = logging.getLogger(__name__)

FP32_FILE, INT8_FILE = "model.onnx", "model.int8.onnx"


class BenchError(RuntimeError):
    """The benchmark cannot run (no model, no test audio); one line."""


def find_models(folder: Path, bc: BenchConfig, name: str = FP32_FILE) -> dict[str, Path]:
    """``{"ours": <folder>/model.onnx}`` plus ``"ours int8"`` when the export kept one beside it."""
    fp32 = Path(folder) / name
    if not fp32.is_file():
        raise BenchError(f"no model at {fp32}: run `make train export` first")
    models = {"ours": fp32}
    int8 = fp32.with_name(fp32.name.replace(".onnx", ".int8.onnx"))
    if bc.int8 and int8 != fp32 and int8.is_file():
        models["ours int8"] = int8
    return models


def load_meta(path: Path):
    from device.engine import Engine, EngineError

    try:
        return Engine.load(path).meta
    except EngineError as exc:
        raise BenchError(str(exc)) from None


def heard_speakers(build: Path, meta) -> list[str]:
    """../shared/data speakers the model has heard -- those its dataset trained on, those its
    threshold was calibrated on and those whose takes chose its heads -- which never count in a
    real-voice figure."""
    from train import evalsets

    calibrated = (meta.calibration.get("real_negatives") or {}).get("shared_speakers") or []
    chose = (meta.training.get("head_choice") or {}).get("shared_speakers") or []
    return sorted(set(evalsets.build_trained_speakers(build)) | set(calibrated) | set(chose))


def test_audio(
    keyword: str, build: Path, params, streams_cfg, bc: BenchConfig, left_out: Iterable[str] = ()
) -> list[TestAudio]:
    """The synthetic and real test sets; the ``left_out`` speakers (:func:`heard_speakers`) are not in them."""
    out_dir = Path(build) / "bench" / "streams"
    tests = testsets.synthetic_sets(keyword, build, params, streams_cfg, bc, out_dir) + testsets.real_sets(
        keyword, params, streams_cfg, bc, out_dir, left_out
    )
    if not any(t.spec.positive for t in tests) or not any(not t.spec.positive for t in tests):
        raise BenchError(
            f"no test audio for {keyword!r}: run `make data` (held-out voices) or provide "
            "../shared/data with recordings of the keyword"
        )
    for line in testsets.describe(tests):
        log.info("test audio: %s", line)
    return tests


def write_daemon_configs(run_dir: Path) -> dict[str, Path]:
    """A quiet config for the scoring runs, one for the cost runs (info: the daemon logs its own CPU
    count at exit) and one with a fake GPIO that logs its edges."""
    from device.fsutil import atomic_write_text

    quiet, cost_cfg, led = run_dir / "daemon.toml", run_dir / "daemon-cost.toml", run_dir / "daemon-led.toml"
    atomic_write_text(quiet, 'log_level = "warning"\n\n[gpio]\nbackend = "fake"\n')
    atomic_write_text(cost_cfg, 'log_level = "info"\n\n[gpio]\nbackend = "fake"\n')
    atomic_write_text(
        led,
        f'log_level = "info"\n\n[gpio]\nbackend = "fake"\nmode = "pulse"\non_s = 0.3\n'
        f'fake_edge_log = "{run_dir / "led-edges.log"}"\n',
    )
    return {"quiet": quiet, "cost": cost_cfg, "led": led}


def score_model(
    label: str, model: Path, tests: list[TestAudio], config: Path, run_dir: Path, decision: DecisionConfig
) -> dict:
    """Every test WAV through the daemon at the default step: frame scores, detections, usage."""
    outputs, usage, mismatches = {}, {"cpu_s": 0.0, "audio_s": 0.0, "max_rss_mb": 0.0}, []
    for t in tests:
        t0 = time.monotonic()
        out, use = daemon.run(
            daemon.listen_argv(model, t.wav, config, frame_scores=True, scores=True),
            run_dir / f"score-{label.replace(' ', '_')}-{t.spec.slug}.log",
        )
        outputs[t.wav.name] = out
        usage["cpu_s"] += use.cpu_s
        usage["audio_s"] += t.duration_s
        usage["max_rss_mb"] = max(usage["max_rss_mb"], use.max_rss_mb)
        offline = [d.time_s for d in detect(out.probs, out.frame_s, decision)]
        daemon_times = [d[0] for d in out.detections]
        if len(offline) != len(daemon_times) or not np.allclose(offline, daemon_times, atol=1e-4):
            mismatches.append(t.wav.name)
        log.info(
            "%s: %s -> %d detections in %.1f s (%.0fx real time)",
            label,
            t.spec.slug,
            len(daemon_times),
            time.monotonic() - t0,
            t.duration_s / max(time.monotonic() - t0, 1e-9),
        )
    return {"outputs": outputs, "usage": usage, "rule_mismatches": mismatches}


def swept_rows(tests, streams: dict, decision: DecisionConfig, bc) -> list[dict]:
    """One report row per (voices, condition) from frame-scored ``streams``: the DET curve, its
    operating points and their per-side counts, by the device's decision rule (ours and peers')."""
    thresholds = accuracy.sweep_thresholds(bc.sweep_thresholds)
    rule = accuracy.rule_detections(streams, decision)
    rng = np.random.default_rng(bc.seed)
    rows = []
    for source, condition in accuracy.keyword_sets(tests):
        s = accuracy.swept(tests, source, condition, rule, thresholds, bc, rng)
        side = accuracy.side_counts(tests, condition, [p.threshold for p in s.points], rule, bc.tolerance_s)
        rows.append(set_row(source, condition, s.curve, s.points, side))
    return rows


def set_row(source: str, condition: str, curve, points: list, side: dict) -> dict:
    """One (voices, condition) entry of an engine in ``report.json``."""
    return {
        "source": source,
        "condition": condition,
        "keywords": curve.keywords,
        "negative_hours": curve.negative_hours,
        "points": [asdict(p) for p in points],
        "side": side,
        "curve": {
            "thresholds": curve.thresholds.tolist(),
            "miss_rate": curve.miss_rate.tolist(),
            "fa_per_hour": curve.fa_per_hour.tolist(),
        },
    }


def accuracy_of(scored: dict, tests: list[TestAudio], decision: DecisionConfig, bc: BenchConfig) -> dict:
    """DET curves, operating points (+ side counts) and the counts at the calibrated threshold."""
    streams = {
        t.wav.name: accuracy.scored(t, scored["outputs"][t.wav.name].probs, scored["outputs"][t.wav.name].frame_s)
        for t in tests
    }
    rows = swept_rows(tests, streams, decision, bc)
    return {"sets": rows, "calibrated": accuracy.at_threshold(tests, streams, decision, bc.tolerance_s)}


def latency_runs(
    model: Path, scored: dict, tests: list[TestAudio], params, config: Path, run_dir: Path, bc: BenchConfig
) -> list[dict]:
    """Frame and event latency on the clean positives at every step size in ``bc.latency_hops_s``."""
    clean = [t for t in tests if t.spec.positive and t.spec.condition == "clean"]
    out: list[dict[str, Any]] = []
    for hop in bc.latency_hops_s:
        frame, event = [], []
        for t in clean:
            if abs(hop - params.infer_every_s) < 1e-9:
                res = scored["outputs"][t.wav.name]  # the accuracy run already stepped at this size
            else:
                res, _ = daemon.run(
                    daemon.listen_argv(model, t.wav, config, scores=True, infer_every_s=hop),
                    run_dir / f"latency-{t.spec.slug}-hop{hop:g}.log",
                )
            f, e = latency.keyword_latencies(
                list(t.spans), [d[0] for d in res.detections], res.reported_at_s, bc.tolerance_s
            )
            frame += f
            event += e
        out.append(
            {
                "hop_s": hop,
                "frame": asdict(latency.Summary.of(frame)),
                "event": asdict(latency.Summary.of(event)),
                "event_values_s": event,
                "keywords": sum(len(t.spans) for t in clean),
            }
        )
        log.info(
            "latency at %g s steps: event median %.3f s, p95 %.3f s over %d hits",
            hop,
            out[-1]["event"]["median_s"],
            out[-1]["event"]["p95_s"],
            len(event),
        )
    return out


def led_run(
    model: Path,
    tests: list[TestAudio],
    params,
    configs: dict[str, Path],
    run_dir: Path,
    bc: BenchConfig,
    hop_s: float | None,
) -> dict | None:
    """The first ``bc.led_keywords`` clean keywords (real voices if any) played at 1x; LED edges."""
    from train.audio_io import read_audio, write_wav

    clean = sorted(
        (t for t in tests if t.spec.positive and t.spec.condition == "clean"), key=lambda t: t.spec.source != "real"
    )
    if not clean or bc.led_keywords == 0:
        return None
    src = clean[0]
    spans = list(src.spans[: bc.led_keywords])
    end_s = min(spans[-1][1] + 1.5, src.duration_s)
    wav = run_dir / f"led-{src.spec.slug}-{len(spans)}.wav"
    write_wav(wav, read_audio(src.wav, params, 0.0, end_s), params.sample_rate)
    edge_log = run_dir / "led-edges.log"
    edge_log.unlink(missing_ok=True)
    err = run_dir / f"led-hop{hop_s or params.infer_every_s:g}.log"
    daemon.run(daemon.listen_argv(model, wav, configs["led"], realtime=True, infer_every_s=hop_s), err)
    t0 = latency.read_t0(err.read_text())
    if t0 is None:
        log.warning("the realtime run did not log its start time; no LED latency")
        return None
    values = latency.led_latencies(spans, latency.read_edges(edge_log), t0, bc.tolerance_s + 1.0)
    return {
        "hop_s": hop_s or params.infer_every_s,
        "source": src.spec.source,
        "keywords": len(spans),
        "audio_s": end_s,
        "led": asdict(latency.Summary.of(values)),
        "values_s": values,
    }


def cost_runs(
    models: dict[str, Path], tests: list[TestAudio], params, config: Path, run_dir: Path, bc: BenchConfig
) -> dict:
    longest = max(tests, key=lambda t: t.duration_s)
    first = next(iter(models.values()))
    per_hop = [
        cost.daemon_cpu(first, longest.wav, longest.duration_s, hop, bc.cost_audio_s, config, run_dir)
        for hop in bc.latency_hops_s
    ]
    per_model = {}
    for label, path in models.items():
        same = [c for c in per_hop if path == first and abs(c["hop_s"] - params.infer_every_s) < 1e-9]
        per_model[label] = (
            same[0]
            if same
            else cost.daemon_cpu(
                path, longest.wav, longest.duration_s, params.infer_every_s, bc.cost_audio_s, config, run_dir
            )
        )
    one = [c for c in per_hop if abs(c["hop_s"] - params.infer_every_s) < 1e-9]
    per_keywords = cost.keyword_costs(
        first,
        tuple(n for n in bc.keyword_counts if n > 1 or not one),
        longest.wav,
        longest.duration_s,
        params.infer_every_s,
        bc.cost_audio_s,
        config,
        run_dir,
    )
    if one and 1 in bc.keyword_counts:
        per_keywords.insert(0, {"keywords": 1, **one[0]})
    return {
        "audio": longest.wav.name,
        "per_hop": per_hop,
        "per_model": per_model,
        "per_keywords": per_keywords,
        "step": cost.step_costs(models, bc.step_cost_steps),
    }


def run(
    keyword: str,
    build: Path,
    cfg: dict,
    bc: BenchConfig,
    *,
    peers: bool = False,
    models: dict[str, Path] | None = None,
    tests: list[TestAudio] | None = None,
    run_dir: Path | None = None,
) -> dict:
    """Everything the report shows, as plain data (``report.json``). ``run_dir``: the daemon's
    logs and scratch files (default ``<build>/bench/run``)."""
    from device.config import DetectConfig
    from train import config as train_config
    from train.streams import StreamConfig

    started = time.monotonic()
    build = Path(build)
    run_dir = run_dir or build / "bench" / "run"
    models = models or find_models(build, bc)
    meta = load_meta(next(iter(models.values())))
    params, decision = meta.params, DetectConfig().resolve(meta)  # what the daemon itself will apply
    decisions = {label: DetectConfig().resolve(load_meta(path)) for label, path in models.items()}  # int8: its own
    if meta.keyword != keyword:
        raise BenchError(f"{next(iter(models.values()))} detects {meta.keyword!r}, not {keyword!r}")
    streams_cfg = train_config.section(cfg, "streams", StreamConfig)
    tests = (
        tests if tests is not None else test_audio(keyword, build, params, streams_cfg, bc, heard_speakers(build, meta))
    )
    configs = write_daemon_configs(run_dir)

    result: dict = {
        "keyword": keyword,
        "model": {
            "path": str(models[next(iter(models))]),
            "version": meta.model_version,
            "threshold": meta.threshold,
            "calibration": meta.calibration,
            "versions": meta.versions,
        },
        "decision": asdict(decision),
        "tolerance_s": bc.tolerance_s,
        "config": asdict(bc),
        "streams_config": asdict(streams_cfg),
        "tests": [
            {
                "slug": t.spec.slug,
                **asdict(t.spec),
                "keywords": len(t.spans),
                "hours": t.hours,
                "streams": t.streams,
                "clips": t.clips,
                "wav": str(t.wav),
            }
            for t in tests
        ],
        "engines": {},
    }
    scored = {}
    for label, path in models.items():
        scored[label] = score_model(label, path, tests, configs["quiet"], run_dir, decisions[label])
        result["engines"][label] = {
            "kind": "ours",
            "path": str(path),
            "decision": asdict(decisions[label]),
            **accuracy_of(scored[label], tests, decisions[label], bc),
            "rule_mismatches": scored[label]["rule_mismatches"],
            "scoring_usage": scored[label]["usage"],
        }
    first = next(iter(models))
    result["latency"] = latency_runs(models[first], scored[first], tests, params, configs["quiet"], run_dir, bc)
    result["led"] = [
        r
        for r in (
            led_run(models[first], tests, params, configs, run_dir, bc, None),
            led_run(models[first], tests, params, configs, run_dir, bc, min(bc.latency_hops_s)),
        )
        if r is not None
    ]
    result["cost"] = cost_runs(models, tests, params, configs["cost"], run_dir, bc)
    for label, c in result["cost"]["per_model"].items():
        result["engines"][label]["cpu_s_per_audio_hour"] = c["cpu_s_per_audio_hour"]
        result["engines"][label]["max_rss_mb"] = c["max_rss_mb"]
    if peers:
        from bench import peers as peer_bench

        result["engines"].update(peer_bench.run_all(keyword, tests, build, bc, decision, run_dir))
    result["production"] = cost.training_numbers(build)
    result["seconds"] = time.monotonic() - started
    return result
