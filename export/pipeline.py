"""``make export``, top to bottom: checkpoint -> ONNX graph -> parity -> calibration -> model.onnx.

1. read ``<build>/train/best.pt`` and rebuild the streaming detector (front end + head);
2. trace it once to an ONNX graph and write a *candidate* file (placeholder threshold);
3. prove parity on real speech: onnxruntime in several chunkings vs PyTorch in one pass;
4. optionally quantize the candidate to int8, and time a streaming step of each candidate;
5. score the calibration streams (held-out voices) through the candidate file(s), chunk by
   chunk as the daemon does, and choose the thresholds;
6. stamp the final metadata on the very same graph and write ``model.onnx`` atomically
   (checked, smoke-run, renamed); ``model.int8.onnx`` only if it is within its accuracy
   bound and cheaper per step;
7. write ``export/report.md`` + ``report.json`` + ``config.json``.

Any failure before step 6 leaves the previous ``model.onnx`` untouched.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from device import modelmeta
from device.engine import Engine
from device.fsutil import atomic_write_text
from export import calib_streams, headchoice, onnx_export
from export.bench import step_cost
from export.calib_streams import CalibrationDataError, Source, folder_source, score
from export.calibrate import Calibration, calibrate
from export.config import ExportConfig
from export.parity import ParityResult, check_operators, check_parity
from export.source import Checkpoint, build_detector, load_checkpoint

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"


@dataclass
class ExportResult:
    """Everything the report shows (:func:`export.report.to_json` turns it into ``report.json``)."""

    model_path: Path
    meta: modelmeta.ModelMeta
    op_types: list[str]
    parity: ParityResult
    calibration: Calibration
    cost: dict = field(default_factory=dict)
    """"fp32" / "int8" -> StepCost.to_dict()."""
    int8: dict = field(default_factory=dict)
    seconds: float = 0.0


def run(keyword: str, build: Path, cfg: dict, xc: ExportConfig, source: Source | None = None) -> ExportResult:
    """The whole export; ``source`` overrides where calibration streams come from (tests)."""
    t0 = time.monotonic()
    build = Path(build)
    out_dir = build / "export"
    ckpt = load_checkpoint(build / "train" / "best.pt", keyword)
    det = build_detector(ckpt)
    log.info("checkpoint %s: step %d, %s", ckpt.path, ckpt.step, ckpt.model_config)
    real = None
    if source is None:
        source, real = calibration_source(xc, cfg, ckpt.params, keyword, build)
    with calib_streams.replayed(source, out_dir / "calibration-audio") as source:
        choice = choose_heads(det, source, xc, cfg, keyword, build)
        if choice is not None and len(choice.kept) < choice.heads:
            ckpt = headchoice.cut(ckpt, choice.kept)
            det = build_detector(ckpt)
        proto = onnx_export.export_graph(det)
        ops = onnx_export.op_types(proto)
        check_operators(ops)
        files = {"fp32": out_dir / "candidate.onnx", "int8": out_dir / "candidate.int8.onnx"}
        choice_dict = choice.to_dict() if choice is not None else {}
        onnx_export.write_proto(onnx_export.with_meta(proto, _meta(ckpt, proto, 0.5, {}, choice_dict)), files["fp32"])
        try:
            parity = check_parity(
                det, files["fp32"], parity_signals(source, xc, ckpt.params.sample_rate), xc.parity_tolerance
            )
            quantized = _quantize(files["fp32"], files["int8"]) if xc.int8 else []
            if not quantized:
                del files["int8"]
            # Same graphs as the final files (only metadata differs), so these are the files' costs.
            cost = {name: step_cost(path, xc.bench_steps, xc.bench_window_s).to_dict() for name, path in files.items()}
            meta, cal, int8 = _calibrate_and_write(ckpt, proto, files, source, xc, build, real, choice_dict)
        finally:
            for path in (out_dir / "candidate.onnx", out_dir / "candidate.int8.onnx"):
                path.unlink(missing_ok=True)
    if int8:
        int8.update(quantized_nodes=quantized, **_int8_cost_verdict(cost, xc))
        _keep_or_drop_int8(int8, build)
    cost["fp32"]["model_bytes"] = (build / MODEL_FILE).stat().st_size
    if int8.get("kept"):
        cost["int8"]["model_bytes"] = (build / INT8_FILE).stat().st_size
    return ExportResult(build / MODEL_FILE, meta, ops, parity, cal, cost, int8, time.monotonic() - t0)


def choose_heads(det, source: Source, xc: ExportConfig, cfg: dict, keyword: str, build: Path):
    """The :class:`export.headchoice.HeadChoice` for a model of several heads (None for one head
    or with ``choose_heads`` off): which of them to ship, chosen on real takes that never trained."""
    if not xc.choose_heads or len(det.head.heads) < 2:
        return None
    from train import config
    from train.streams import StreamConfig

    takes = headchoice.keyword_takes(xc, cfg, keyword, build, det.params)
    t0 = time.monotonic()
    choice = headchoice.choose(
        det, source, takes, xc, config.section(cfg, "streams", StreamConfig), lambda negs: calibration_basis(negs, xc)
    )
    log.info(
        "heads kept: %s of %d (%s) in %.1f s", list(choice.kept), choice.heads, choice.reason, time.monotonic() - t0
    )
    return choice


def calibration_source(xc: ExportConfig, cfg: dict, params, keyword: str, build: Path):
    """-> (source, real negatives or None): the configured folder, else streams voiced by the
    dataset's held-out speakers, with the real negative audio that never trained (if any)."""
    if xc.calibration_dir:
        return folder_source(xc.calibration_dir, params), None
    from export.heldout import HeldoutPlan, heldout_source
    from train import config
    from train.streams import StreamConfig

    real = real_negatives(xc, cfg, keyword, build)
    kinds = ("confusable", "speech") if xc.calibration_confusables else ("speech",)
    plan = HeldoutPlan(
        xc.calibration_split, xc.speech_hours, xc.noise_hours, xc.calibration_seed, negative_kinds=kinds, real=real
    )
    return heldout_source(keyword, build, params, plan, config.section(cfg, "streams", StreamConfig)), real


BUNDLED_SPEECH = Path(__file__).resolve().parent / "speech"
"""Real read speech shipped with wakeword for calibration (``export/speech/README.md``): the
recordings of ``../shared/data``'s speechocean762 speakers whose
:func:`train.realdata.speaker_position` is at least 0.5, under the same relative paths."""


def bundled_speech(keyword: str, trained=()) -> tuple[list[Path], list[str]]:
    """The files of :data:`BUNDLED_SPEECH` that do not say ``keyword`` (the mentions list names
    them by their ``../shared/data`` path), minus those of ``trained`` speakers, and their
    speakers under ``../shared/data``'s names (``make bench`` leaves them out of its figures)."""
    from train import realdata
    from train.audio_io import list_audio_files

    said, left_out = realdata.mentions(keyword), set(trained)
    files, speakers = [], set()
    for path in list_audio_files(BUNDLED_SPEECH):
        rel = path.relative_to(BUNDLED_SPEECH)  # <corpus>/<speaker>/<file>
        speaker = f"{rel.parts[0]}-{rel.parts[1]}"
        if f"negatives/{rel.as_posix()}" not in said and speaker not in left_out:
            files.append(path)
            speakers.add(speaker)
    return files, sorted(speakers)


def real_negatives(xc: ExportConfig, cfg: dict, keyword: str, build: Path):
    """The real negative audio to calibrate on (:class:`export.heldout.RealNegatives`), or None:
    every file of ``[export] real_negative_dirs``, the held-out (``calibration_split``) files of
    ``[data] speech_dirs``, the speech wakeword ships (``bundled_speech``), and
    ``shared_calibration_share`` of ``../shared/data``'s speakers (never one who trained: the
    dataset manifest names them). Their noisy copy is mixed over the
    real backgrounds of ``[data] background_dirs`` (and ../shared/data's noise with the shared
    speakers): generated noise let real rooms' false accepts through (docs/experiments.md)."""
    from export.heldout import RealNegatives
    from train import config, evalsets, realdata
    from train.audio_io import AUDIO_KINDS, list_audio_files
    from train.dataconfig import DataConfig
    from train.sources import recording_split

    files: list[Path] = []
    for folder in xc.real_negative_dirs:
        found = list_audio_files(folder) if Path(folder).is_dir() else []
        if not found:
            raise CalibrationDataError(f"[export] real_negative_dirs: {folder} holds no {AUDIO_KINDS} files")
        files += found
    dc = config.section(cfg, "data", DataConfig)
    for folder in dc.speech_dirs:
        files += [p for p in list_audio_files(folder) if recording_split(p, dc) == xc.calibration_split]
    folders = tuple(xc.real_negative_dirs) + tuple(f"{d} (held-out files)" for d in dc.speech_dirs)
    trained = evalsets.build_trained_speakers(build)
    bundled: list[str] = []
    if xc.bundled_speech:
        found, bundled = bundled_speech(keyword, trained)
        if not found:
            raise CalibrationDataError(
                f"[export] bundled_speech: {BUNDLED_SPEECH} holds no {AUDIO_KINDS} files (an incomplete "
                "checkout?); set it to false to calibrate without it"
            )
        files += found
        folders += (f"wakeword's own read speech (export/speech: speechocean762, {len(bundled)} speakers)",)
    shared: list[str] = []
    if xc.shared_calibration_share > 0:
        clips, shared = realdata.calibration_negatives(xc.shared_calibration_share, keyword, trained)
        clips = [c for c in clips if c.speaker not in bundled]  # the same recordings: once is enough
        files += [c.path for c in clips]
        folders += ("../shared/data",) if clips else ()
    if not files:
        return None
    noise = [p for d in dc.background_dirs for p in list_audio_files(d)]
    if shared:  # this machine's stand-in for a user's room: the recorded noise of ../shared/data
        noise += [c.path for c in realdata.noise_clips()]
    speakers = sorted(set(shared) | set(bundled))
    log.info(
        "real calibration negatives: %d files%s",
        len(files),
        f" ({len(speakers)} ../shared/data speakers)" if speakers else "",
    )
    return RealNegatives(tuple(files), folders, tuple(speakers), tuple(noise))


def parity_signals(source: Source, xc: ExportConfig, sample_rate: int) -> list[np.ndarray]:
    """Up to ``parity_streams`` signals from ``source``, keyword streams (real speech) first."""
    seen = list(itertools.islice(source(), 2 * xc.parity_streams))
    if not seen:
        raise CalibrationDataError("the calibration source produced no streams")
    seen.sort(key=lambda s: not s.positive)
    max_samples = round(xc.parity_max_s * sample_rate)
    return [s.audio[:max_samples] for s in seen[: xc.parity_streams]]


def _quantize(src: Path, dst: Path) -> list[str]:
    from export.quantize import quantize_int8

    return quantize_int8(src, dst)


def _calibrate_and_write(
    ckpt: Checkpoint,
    proto: onnx.ModelProto,
    files: dict,
    source: Source,
    xc: ExportConfig,
    build: Path,
    real=None,
    choice: dict | None = None,
) -> tuple[modelmeta.ModelMeta, Calibration, dict]:
    """Score and calibrate every candidate, write model.onnx -> (meta, fp32 calibration, int8 figures).

    The int8 figures include ``"proto"``, the int8 graph with its own calibrated metadata,
    for :func:`_keep_or_drop_int8`.
    """
    from export.heldout import REAL_GROUPS

    steppers = {name: Engine.load(path, threads=xc.score_threads) for name, path in files.items()}
    t0 = time.monotonic()
    scored = score(source, steppers)
    log.info("scored calibration streams in %.1f s", time.monotonic() - t0)
    basis = calibration_basis(scored["fp32"].negatives, xc)
    cal = {
        name: dataclasses.replace(
            calibrate(s.negatives, s.positives, xc.calibration(), basis), real_negatives=real.describe() if real else {}
        )
        for name, s in scored.items()
    }
    s = scored["fp32"]
    synthetic = tuple(g for g in s.negatives if g not in REAL_GROUPS)
    if real and len(synthetic) < len(s.negatives):  # what the synthetic streams alone would have chosen
        alt = calibrate(
            s.negatives, s.positives, dataclasses.replace(xc.calibration(), extra_targets_fa_per_hour=()), synthetic
        ).points[0]
        cal["fp32"] = dataclasses.replace(
            cal["fp32"],
            other_bases={
                "synthetic": {
                    "basis": list(synthetic),
                    "threshold": alt.threshold,
                    "miss_rate": alt.miss_rate,
                    "fa_per_hour_by_group": alt.fa_per_hour_by_group,
                }
            },
        )
    meta = _meta(ckpt, proto, cal["fp32"].threshold, cal["fp32"].to_meta(), choice)
    model_path = onnx_export.write_proto(onnx_export.with_meta(proto, meta), build / MODEL_FILE)
    log.info("wrote %s (threshold %.4f for %g FA/h)", model_path, meta.threshold, xc.target_fa_per_hour)
    if "int8" not in files:
        (build / INT8_FILE).unlink(missing_ok=True)  # never leave an int8 file of an older model
        return meta, cal["fp32"], {}
    fp, q = cal["fp32"].points[0], cal["int8"].points[0]
    diffs = [
        float(np.max(np.abs(a.probs - b.probs), initial=0.0))
        for side in ("negatives", "positives")
        for group, streams in getattr(scored["fp32"], side).items()
        for a, b in zip(streams, getattr(scored["int8"], side)[group])
    ]
    int8_meta = dataclasses.replace(
        meta, threshold=q.threshold, calibration=cal["int8"].to_meta(), model_version=meta.model_version + "-int8"
    )
    return (
        meta,
        cal["fp32"],
        {
            "threshold": q.threshold,
            "miss_rate": q.miss_rate,
            "fa_per_hour": q.fa_per_hour,
            "target_met": q.target_met or not fp.target_met,
            "miss_increase": q.miss_rate - fp.miss_rate,
            "bound": xc.int8_max_miss_increase,
            "max_abs_prob_diff_vs_fp32": max(diffs, default=0.0),
            "calibration": cal["int8"].to_meta(),
            "proto": onnx_export.with_meta(onnx.load(str(files["int8"])), int8_meta),
        },
    )


def calibration_basis(negatives: dict, xc: ExportConfig) -> tuple:
    """The negative groups the thresholds are chosen on; () = all of them (real and synthetic
    pooled, the default), or the real groups alone with ``real_basis = "real"`` and enough hours."""
    from export.heldout import REAL_GROUPS

    real = tuple(g for g in REAL_GROUPS if negatives.get(g))
    if not real:
        return ()
    hours = sum(s.duration_s for g in real for s in negatives[g]) / 3600
    if xc.real_basis == "pooled":
        log.info("calibrating on %.2f h of real negative audio pooled with the held-out synthetic streams", hours)
        return ()
    if hours >= xc.real_min_hours:
        log.info("calibrating on %.2f h of real negative audio alone (%s)", hours, " + ".join(real))
        return real
    log.warning(
        "only %.2f h of real negative audio (want >= %g h, [export] real_min_hours): "
        "calibrating on it pooled with the held-out synthetic streams",
        hours,
        xc.real_min_hours,
    )
    return ()


def _int8_cost_verdict(cost: dict, xc: ExportConfig) -> dict:
    ratio = cost["int8"]["stream_cpu_ms"] / max(cost["fp32"]["stream_cpu_ms"], 1e-9)
    return {
        "cpu_ratio_vs_fp32": ratio,
        "size_ratio_vs_fp32": cost["int8"]["model_bytes"] / cost["fp32"]["model_bytes"],
        "faster": ratio <= xc.int8_max_cpu_ratio,
    }


def _keep_or_drop_int8(int8: dict, build: Path) -> None:
    """Write ``model.int8.onnx`` only if it is as accurate (within the bound) *and* cheaper; else remove it."""
    proto = int8.pop("proto")
    int8["kept"] = bool(int8["target_met"] and int8["miss_increase"] <= int8["bound"] + 1e-12 and int8["faster"])
    if int8["kept"]:
        onnx_export.write_proto(proto, build / INT8_FILE)
    else:
        (build / INT8_FILE).unlink(missing_ok=True)
    log.info(
        "int8 %s: miss rate %+.3f vs float32 (bound %g), CPU per step x%.2f",
        "kept" if int8["kept"] else "not kept",
        int8["miss_increase"],
        int8["bound"],
        int8["cpu_ratio_vs_fp32"],
    )


def _meta(
    ckpt: Checkpoint, proto: onnx.ModelProto, threshold: float, calibration: dict, choice: dict | None = None
) -> modelmeta.ModelMeta:
    from train.frontend import describe

    params = ckpt.params
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    states = {
        i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
        for i in proto.graph.input
        if i.name.startswith(modelmeta.STATE_IN_PREFIX)
    }
    stream = {
        "chunk_multiple_samples": params.output_hop_samples,
        "default_chunk_samples": params.chunk_samples,
        "output_frame_s": params.output_hop_s,
        "label_window_frames": params.label_window_frames,
        "state_shapes": states,
        "params_digest": params.digest(),
    }
    training = ckpt.training_summary()
    training["dataset"] = dataset_summary(ckpt.path.parent.parent / "dataset" / "manifest.json")
    if choice:
        training["head_choice"] = choice
    return modelmeta.ModelMeta(
        keyword=ckpt.keyword,
        params=params,
        threshold=float(np.clip(threshold, 1e-6, 1 - 1e-6)),
        model_version=f"{ckpt.keyword}-{stamp}-{onnx_export.graph_digest(proto)}",
        calibration=calibration,
        training=training,
        versions={**onnx_export.tool_versions(), **_code_version()},
        stream=stream,
        frontend=describe(),
    )


def dataset_summary(manifest_path: Path) -> dict:
    """Seed, clips, keywords and voices per split from the dataset manifest ({} when absent)."""
    import json

    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return {}
    splits = manifest.get("splits") or {}
    sources = manifest.get("sources") or {}
    return {
        "seed": manifest.get("seed"),
        "created": manifest.get("created"),
        "clips": {k: v.get("clips") for k, v in splits.items() if isinstance(v, dict)},
        "keywords": {k: v.get("keywords") for k, v in splits.items() if isinstance(v, dict)},
        "distinct_voices": sources.get("distinct_voices"),
        "engines": sorted(sources.get("engines") or []),
    }


def _code_version() -> dict:
    from importlib import metadata

    try:
        return {"wakeword": metadata.version("wakeword")}
    except metadata.PackageNotFoundError:
        return {"wakeword": "unknown"}


def save_config(cfg: dict, out_dir: Path) -> None:
    """The resolved configuration, next to the artifacts it produced."""
    import json

    atomic_write_text(out_dir / "config.json", json.dumps(cfg, indent=2, sort_keys=True, default=str) + "\n")
