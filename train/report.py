"""``<build>/train/report.md``: one page on a training run, rewritten at every validation."""

from __future__ import annotations

import json
from pathlib import Path

from device.fsutil import atomic_write_text
from train.validate import REPORT_FA_PER_HOUR


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}"
    return "-" if v is None else str(v)


def metrics_table(rows: dict[str, dict]) -> list[str]:
    """Markdown table: one row per evaluation set."""
    cols = [f"miss@{fa:g}" for fa in REPORT_FA_PER_HOUR]
    out = [
        "| set | keywords | hours | negative hours | "
        + " | ".join(f"miss @ {fa:g} FA/h" for fa in REPORT_FA_PER_HOUR)
        + " | miss, FA/h at the synthetic threshold | frame loss |",
        "|---" * (6 + len(cols)) + "|",
    ]
    for name, m in rows.items():
        at_ref = f"{_fmt(m['miss@ref_thr'])}, {_fmt(m['fa_h@ref_thr'])}" if "miss@ref_thr" in m else "(reference)"
        out.append(
            f"| {name} | {m.get('keywords')} | {_fmt(m.get('hours'))} | {_fmt(m.get('negative_hours'))} | "
            + " | ".join(_fmt(m.get(c)) for c in cols)
            + f" | {at_ref} | {_fmt(m.get('frame_loss'))} |"
        )
    return out


def best_row(history: dict, step) -> dict[str, dict]:
    """The validation metrics recorded at ``step``, regrouped by set."""
    for h in history.get("val", []):
        if h["step"] == step:
            rows: dict[str, dict] = {}
            for key, v in h.items():
                if "/" in key:
                    name, metric = key.split("/", 1)
                    rows.setdefault(name, {})[metric] = v
            return rows
    return {}


def describe_data(summary: dict) -> str:
    """One line on the training data from the dataset summary (whatever keys it has)."""
    parts = []
    clips, voices = summary.get("clips"), summary.get("distinct_voices")
    if isinstance(clips, dict):
        parts.append("clips " + ", ".join(f"{k} {v}" for k, v in sorted(clips.items())))
    else:
        parts.append(f"{summary.get('train_clips')} train / {summary.get('val_clips')} val clips")
    if isinstance(voices, dict):
        parts.append("distinct voices " + ", ".join(f"{k} {v}" for k, v in sorted(voices.items())))
    if summary.get("engines"):
        parts.append("engines " + ", ".join(summary["engines"]))
    for key in ("seed", "build_key"):
        if key in summary:
            parts.append(f"{key} {summary[key]}")
    return "; ".join(parts) + " (full summary in the checkpoint's data_summary)"


def _short_line(trainer) -> str:
    tc, short = trainer.tc, sum(trainer.short)
    return (
        f"- heads: {len(trainer.short) - short} long (the whole schedule) and {short} short (schedule ends at step "
        f"{trainer.short_steps}, kept from there; dropout {tc.short_dropout:g}, embedding noise "
        f"{tc.short_feature_noise:g}, {tc.short_freq_masks} dimension and {tc.short_time_masks} time masks)"
    )


def write(path: Path, trainer, results: dict) -> None:
    tc, best = trainer.tc, trainer.best
    n_params = sum(p.numel() for p in trainer.model.parameters())
    lines = [
        f"# Training report: {trainer.keyword!r}",
        "",
        f"- step {trainer.step} of {trainer.planned_steps} planned "
        f"({'planned from the time budget' if tc.max_minutes else 'max_steps'}), epoch {trainer.epoch}, "
        f"{trainer.elapsed_s / 60:.1f} min of training (budget {tc.max_minutes:g} min), "
        f"throughput {trainer.clips_per_s:.1f} clips/s in training steps",
        f"- model: {json.dumps(trainer.model.cfg.to_dict())}, {n_params:,} parameters",
        *([_short_line(trainer)] if any(trainer.short) else []),
        *(
            [f"- fine-tuned from `{trainer.init_from['path']}` (step {trainer.init_from['step']} of its run)"]
            if getattr(trainer, "init_from", None)
            else []
        ),
        f"- data: {describe_data(trainer.data_summary)}",
        f"- best checkpoint (`best.pt`): step {best['step']}, {best['metric']} = {_fmt(best['value'])} "
        + (
            '(the latest validation: `[train] select = "last"`)'
            if trainer.tc.select == "last"
            else "(selected on held-out synthetic voices only)"
        ),
        "",
        "## Best checkpoint",
        "",
    ]
    lines += metrics_table(best_row(trainer.history, best["step"]))
    lines += ["", f"## Latest validation (step {trainer.step})", ""]
    lines += metrics_table({name: r.summary() for name, r in results.items()})
    lines += [
        "",
        "Miss rate at a false-accept rate means: the lowest threshold whose false accepts per hour on",
        "that set's negative audio stay at or below the rate, and the share of keywords it misses there.",
        "With `h` negative hours the smallest non-zero rate measurable is `1/h` per hour, so on a set",
        "with less than 2 (10) negative hours, miss @ 0.5 (0.1) FA/h is the miss rate at zero false accepts.",
        '"At the synthetic threshold": the threshold giving 0.5 FA/h on the held-out synthetic voices (what',
        "`make export` calibrates on), applied to that set -- the miss rate and false accepts a shipped model",
        "would show there.",
        "",
        "## Pictures",
        "",
        "![training curves](curves.png)",
        "",
        "![DET curve](det.png)",
        "",
        "![examples](examples.png)",
        "",
        "## Configuration",
        "",
        "The resolved configuration is in `config.json` (and inside every checkpoint).",
        "`make train` again resumes from `last.pt`; `make export` reads `best.pt`.",
        "",
    ]
    atomic_write_text(path, "\n".join(lines))
