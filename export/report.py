"""``build/<keyword>/export/report.md`` (for people), ``report.json`` (for tools) and ``det.png``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from device.fsutil import atomic_path, atomic_write_text
from export.heldout import REAL_GROUPS

log = logging.getLogger(__name__)


def write_report(result, out_dir: Path, command: str) -> Path:
    """Write all three files for an :class:`export.pipeline.ExportResult`; returns report.md."""
    out_dir = Path(out_dir)
    data = to_json(result, command)
    atomic_write_text(out_dir / "report.json", json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    plotted = _det_plot(result.calibration, out_dir / "det.png")
    atomic_write_text(out_dir / "report.md", to_markdown(data, plotted))
    return out_dir / "report.md"


def to_json(result, command: str) -> dict:
    meta = result.meta
    training = {k: v for k, v in meta.training.items() if k != "config"}
    return {
        "command": command,
        "seconds": round(result.seconds, 1),
        "keyword": meta.keyword,
        "model": {
            "path": str(result.model_path),
            "bytes": result.model_path.stat().st_size,
            "version": meta.model_version,
            "threshold": meta.threshold,
            "audio_params": meta.params.to_dict(),
            "stream": meta.stream,
            "op_types": result.op_types,
            "versions": meta.versions,
        },
        "training": training,
        "parity": result.parity.to_dict(),
        "calibration": result.calibration.to_dict(),
        "int8": result.int8,
        "cost": result.cost,
    }


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f} %"


def to_markdown(d: dict, plotted: bool) -> str:
    m, cal, par = d["model"], d["calibration"], d["parity"]
    lines = [
        f'# Export report: "{d["keyword"]}"',
        "",
        f"`{d['command']}` ({d['seconds']} s). Model `{m['path']}`: {m['bytes'] / 1024:.0f} KiB, "
        f"version `{m['version']}`, default threshold **{m['threshold']:.4f}** "
        f"(target {cal['target_fa_per_hour']:g} false accepts/h).",
        "",
    ]
    lines += _training_lines(d["training"])
    lines += _head_lines(d["training"].get("head_choice") or {})
    lines += [
        "## Calibration",
        "",
        f"Negative audio: **{cal['negative_hours']:.2f} h** ("
        + ", ".join(f"{g} {h:.2f} h" for g, h in cal["negative_hours_by_group"].items())
        + f"); positives: {cal['keywords']} keywords ("
        + ", ".join(f"{g} {n}" for g, n in cal["keywords_by_group"].items())
        + "). "
        f"Decision rule: smoothing {cal['decision']['smoothing_frames']} frame(s), refractory "
        f"{cal['decision']['refractory_s']:g} s; hit tolerance {cal['tolerance_s']:g} s.",
        "",
    ]
    basis = cal.get("basis") or list(cal["negative_hours_by_group"])
    basis_h = cal.get("basis_hours", cal["negative_hours"])
    lines += [
        f"The thresholds stand on **{basis_h:.2f} h** of negative audio: {', '.join(basis)}"
        + (
            f" (real audio that never trained: {_real_words(cal['real_negatives'])})"
            if cal.get("real_negatives") and set(basis) & set(REAL_GROUPS)
            else ""
        )
        + ".",
        "",
    ]
    for name, alt in (d["calibration"].get("other_bases") or {}).items():
        by_group = ", ".join(f"{g} {v:.2f}" for g, v in alt["fa_per_hour_by_group"].items())
        lines += [
            f"Chosen on the {name} streams alone ({', '.join(alt['basis'])}), the "
            f"{cal['target_fa_per_hour']:g} FA/h threshold would be {alt['threshold']:.4f} "
            f"(miss rate {_pct(alt['miss_rate'])}; FA/h there: {by_group}).",
            "",
        ]
    if cal["low_confidence"]:
        lines += [
            f"**Low confidence:** fewer negative hours than the configured minimum; with "
            f"{basis_h:.2f} h one false accept is {1 / max(basis_h, 1e-9):.2f}/h.",
            "",
        ]
    groups = sorted({g for p in cal["points"] for g in p["miss_rate_by_group"]})
    neg_groups = list(cal["negative_hours_by_group"])
    lines += [
        "| target FA/h | threshold | measured FA/h | false accepts | miss rate | "
        + " | ".join(f"miss {g}" for g in groups)
        + " | "
        + " | ".join(f"FA/h {g}" for g in neg_groups)
        + " | met |",
        "|---:|---:|---:|---:|---:|" + "---:|" * (len(groups) + len(neg_groups)) + ":-:|",
    ]
    for p in cal["points"]:
        fa_by_group = p.get("fa_per_hour_by_group") or {}
        lines.append(
            f"| {p['target_fa_per_hour']:g} | {p['threshold']:.4f} | {p['fa_per_hour']:.3f} | "
            f"{p['false_accepts']} | {_pct(p['miss_rate'])} | "
            + " | ".join(_pct(p["miss_rate_by_group"].get(g, float("nan"))) for g in groups)
            + " | "
            + " | ".join(f"{fa_by_group[g]:.2f}" if g in fa_by_group else "n/a" for g in neg_groups)
            + f" | {'yes' if p['target_met'] else '**no**'} |"
        )
    lines += [""] + (["![DET curve](det.png)", ""] if plotted else [])
    lines += _parity_lines(par, m)
    lines += _cost_lines(d["cost"], d["int8"])
    return "\n".join(lines) + "\n"


def _real_words(real: dict) -> str:
    parts = [f"{real.get('files', 0)} files"]
    if real.get("folders"):
        parts.append("from " + ", ".join(f"`{f}`" for f in real["folders"]))
    if real.get("shared_speakers"):
        parts.append(f"{len(real['shared_speakers'])} ../shared/data speakers (left out of `make bench`)")
    return "; ".join(parts)


def _training_lines(t: dict) -> list[str]:
    ds = t.get("dataset") or {}
    data = ", ".join(f"{k} {v}" for k, v in ds.items() if v not in (None, {}, [])) or ", ".join(
        f"{k} {v}" for k, v in (t.get("data") or {}).items()
    )
    val = "; ".join(
        f"{name}: " + _figures(figs) if isinstance(figs, dict) else f"{name} {figs}"
        for name, figs in (t.get("validation") or {}).items()
    )
    best = t.get("best") or {}
    lines = [
        "## Training",
        "",
        f"Checkpoint `{t.get('checkpoint')}` at step {t.get('step')} "
        f"(best {best.get('metric')} = {_num(best.get('value'))} at step {best.get('step')}).",
        f"Data: {data or 'no summary found'}.",
        f"Validation: {val or 'none recorded'}.",
        "",
    ]
    return lines


def _speakers(shared: list[str]) -> str:
    """How many ``../shared/data`` speakers, counting the files whose speaker is not known apart
    (``train.realdata`` makes each its own ``unknown:<path>``)."""
    unknown = sum(1 for s in shared if s.startswith("unknown:"))
    known = len(shared) - unknown
    parts = [f"{known} ../shared/data speaker{'s' * (known > 1)}"] if known else []
    parts += [f"{unknown} ../shared/data file{'s' * (unknown > 1)} whose speaker is not known"] if unknown else []
    return " and ".join(parts)


def _head_lines(hc: dict) -> list[str]:
    """The head choice (export.headchoice): what was kept and why, and each candidate's misses."""
    if not hc:
        return []
    kept, n = list(hc["kept"]), hc["heads"]  # a tuple when fresh, a list when read back from JSON
    lines = [
        "## Heads",
        "",
        f"Shipped: **{f'all {n}' if len(kept) == n else f'heads {kept} of {n}'}**. {hc['reason']}.",
    ]
    if hc.get("takes"):
        where = ", ".join(f"`{o}`" for o in hc.get("origins") or [])
        shared = hc.get("shared_speakers") or []
        lines.append(
            f"Chosen on {hc['takes']} real takes that never trained ({where}"
            + (f"; {_speakers(shared)}, left out of `make bench`" if shared else "")
            + "), each once clean and once over noise, at the thresholds that meet the target "
            "on the calibration's negative streams."
        )
    if hc.get("candidates"):
        lines += ["", "| heads | threshold | take copies missed | miss rate | target met |", "|---|---:|---:|---:|:-:|"]
        for c in hc["candidates"]:
            lines.append(
                f"| {c['heads']} | {c['threshold']:.4f} | {c['missed']} | {_pct(c['miss_rate'])} | "
                f"{'yes' if c['target_met'] else '**no**'} |"
            )
    return lines + [""]


def _figures(figs: dict) -> str:
    shown = {k: v for k, v in figs.items() if k.startswith("miss@") or k in ("keywords", "negative_hours")}
    return ", ".join(f"{k} {_num(v)}" for k, v in shown.items())


def _num(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _parity_lines(par: dict, m: dict) -> list[str]:
    lines = [
        "## Parity (onnxruntime vs PyTorch)",
        "",
        f"{par['seconds_checked']:.1f} s of calibration audio (keyword streams first); PyTorch runs each "
        f"signal in one pass, onnxruntime streams it with carried state. Tolerance {par['tolerance']:g}.",
        "",
        "| chunking | chunk sizes (samples) | max abs diff |",
        "|---|---|---:|",
    ]
    for name, diff in par["max_abs_diff"].items():
        sizes = par["chunkings"][name]
        lines.append(f"| {name} | {'whole signal' if sizes == [0] else ', '.join(map(str, sizes))} | {diff:.2g} |")
    lines += [
        "",
        "Operators (all standard `ai.onnx`, implemented by every onnxruntime CPU build incl. aarch64): "
        + ", ".join(op.split(":", 1)[1] for op in m["op_types"])
        + ".",
        f"Tools: {', '.join(f'{k} {v}' for k, v in sorted(m['versions'].items()))}.",
        "",
    ]
    return lines


def _cost_lines(cost: dict, int8: dict) -> list[str]:
    lines = [
        "## Cost per 0.5 s step (onnxruntime, 1 thread, this machine)",
        "",
        "| model | file KiB | stream step wall ms | stream CPU ms | CPU s per audio hour | "
        "10 s window wall ms | window CPU ms | window CPU s/h | streaming saves |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, c in cost.items():
        lines.append(
            f"| {name} | {c['model_bytes'] / 1024:.0f} | {c['stream_wall_ms']:.3f} | "
            f"{c['stream_cpu_ms']:.3f} | "
            f"{c['stream_cpu_s_per_audio_hour']:.1f} | {c['window_wall_ms']:.2f} | {c['window_cpu_ms']:.2f} | "
            f"{c['window_cpu_s_per_audio_hour']:.0f} | {c['speedup']:.1f}x |"
        )
    lines.append("")
    if int8:
        if int8["kept"]:
            verdict = "**Kept** as `model.int8.onnx` (`model.onnx` stays float32 and is what `make deploy` ships)."
        else:
            why = [
                w
                for w, bad in (
                    ("misses more than the bound", int8["miss_increase"] > int8["bound"] + 1e-12),
                    ("misses its false-accept target", not int8["target_met"]),
                    ("is not cheaper per step", not int8["faster"]),
                )
                if bad
            ]
            verdict = f"**Not kept**: it {' and '.join(why)}."
        lines += [
            "## int8 (dynamic quantization of the network's Conv/MatMul; front end and GRUs stay float32)",
            "",
            f"Quantized nodes: {', '.join(int8['quantized_nodes']) or 'none'}. Calibrated on the same streams: "
            f"threshold {int8['threshold']:.4f}, miss rate {_pct(int8['miss_rate'])} "
            f"({100 * int8['miss_increase']:+.1f} points vs float32; bound {100 * int8['bound']:.1f}), "
            f"largest probability difference vs float32 {int8['max_abs_prob_diff_vs_fp32']:.3g}; "
            f"CPU per step x{int8['cpu_ratio_vs_fp32']:.2f} and file size x{int8['size_ratio_vs_fp32']:.2f} "
            f"of float32. {verdict}",
            "",
        ]
    return lines


def _det_plot(cal, path: Path) -> bool:
    """DET curve (miss rate vs false accepts/h) with the chosen operating points; False if no matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    curve = cal.curve
    fig, ax = plt.subplots(figsize=(6, 4.5))
    # Below the threshold of most false accepts the score sits above threshold for long runs and
    # fires *less* often; that end of the sweep is no operating point, so it is left out.
    first = int(np.argmax(curve["fa_per_hour"])) if curve["fa_per_hour"] else 0
    fa = [max(x, 1e-3) for x in curve["fa_per_hour"][first:]]
    ax.plot(fa, [100 * m for m in curve["miss_rate"][first:]], ".-", label="threshold sweep")
    for p in cal.points:
        ax.plot(
            max(p.fa_per_hour, 1e-3),
            100 * p.miss_rate,
            "o",
            label=f"target {p.target_fa_per_hour:g}/h: thr {p.threshold:.3f}",
        )
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (0 plotted at 0.001)")
    ax.set_ylabel("miss rate (%)")
    ax.set_title(f"DET on {cal.negative_hours:.1f} h negatives, {cal.keywords} keywords")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return True
