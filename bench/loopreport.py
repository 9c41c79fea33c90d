"""``<loop>/loop-report.md``: the model before and after one turn of the field loop, side by side."""
from __future__ import annotations

import json
from pathlib import Path

from bench.report import _miss, _pct
from device.fsutil import atomic_write_text


def rows(results: dict[str, dict]) -> list[str]:
    """Markdown table rows, one per model (``before``, ``after``)."""
    out = []
    for name, report in results.items():
        e = report["engines"]["ours"]
        cells = [name, f"{e['decision']['threshold']:.4f}"]
        for cond in ("clean", "10dB"):
            pos, neg = (e["calibrated"].get(f"real-{cond}-{kind}", {}) for kind in ("pos", "neg"))
            cells.append(_pct(pos.get("miss_rate")))
            cells.append(f"{neg.get('false_accepts', '-')} in {neg.get('hours', 0):.2f} h")
        for cond in ("clean", "10 dB"):
            cells.append(_pct(_miss(e, "real", cond, 0.5)))
        out.append("| " + " | ".join(cells) + " |")
    return out


def write_report(args, results: dict[str, dict]) -> Path:
    loop = Path(args.loop_build)
    collected = json.loads((loop / "field" / "collected.json").read_text())
    manifest = loop / "dataset" / "manifest.json"
    origins = json.loads(manifest.read_text())["sources"].get("recordings", {}) if manifest.exists() else {}
    lines = [
        f'# One turn of the field loop: "{args.keyword}"',
        "",
        f"Household (field) speakers: {', '.join(collected['speakers'])}. The daemon heard their real non-keyword "
        f"speech (clean and in real noise) with `[save]` on at threshold {collected['review_threshold']:g}; its "
        f"**{collected['false_accepts']} saved detections** were reviewed as false accepts and went into the next "
        f"`make train` (dataset origins: {json.dumps(origins) if origins else 'see the dataset manifest'}). "
        "Both models trained the same number of steps on the same recipe.",
        "",
        "Benchmarked on the same test audio; the real negatives are those of the **other** speakers only "
        "(none heard by either model in training). Real keywords: all of `../shared/data`.",
        "",
        "| model | threshold (calibrated) | real clean: miss | real clean: false accepts | real 10 dB: miss "
        "| real 10 dB: false accepts | real clean miss @ 0.5 FA/h | real 10 dB miss @ 0.5 FA/h |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows(results),
        "",
        "Miss and false accepts at each model's own calibrated threshold (`make export`'s, 0.5 FA/h on held-out "
        "synthetic speech); the @ 0.5 FA/h columns sweep the threshold over all negative speech of the benchmark. "
        f"Full reports: `{loop}/bench-before/report.md`, `{loop}/bench-after/report.md`.",
        "",
        "Command: `make loop` (`python -m bench.fieldloop --keyword "
        f"{args.keyword} --build {args.build}`).",
        "",
    ]
    path = loop / "loop-report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
