"""``<loop>/loop-report.md``: the shipped model, a control fine-tune and the fine-tune with the
household's audio, side by side (``bench/fieldloop.py``)."""

from __future__ import annotations

import json
from pathlib import Path

from bench.report import _miss_cell, _pct
from bench.testsets import HARD_NEGATIVES
from device.fsutil import atomic_write_text

LABELS = {
    "before": "before (shipped)",
    "control": "control fine-tune (no household audio)",
    "after": "after one loop (household audio)",
}


def _conditions(group: dict) -> list[str]:
    """A group's conditions (``clean``, ``10 dB``...), clean first."""
    conds = {row["condition"] for row in group.get("sets", [])}
    return sorted(conds, key=lambda c: (c != "clean", c))


def _at_threshold(group: dict, source: str, cond: str) -> tuple[str, str]:
    """(miss cell, false accepts cell) at the model's own threshold."""
    slug = f"{source}-{cond.replace(' ', '')}"
    pos = group["calibrated"].get(f"{slug}-pos", {})
    neg = group["calibrated"].get(f"{slug}-neg", {})
    miss = pos.get("miss_rate")
    missed = f"{_pct(miss)} ({round(miss * pos['keywords'])}/{pos['keywords']})" if miss is not None else "-"
    fas = f"{neg['false_accepts']} in {neg['hours']:.2f} h" if neg else "-"
    return missed, fas


def household_rows(measured: dict) -> list[str]:
    out = []
    for name, m in measured["models"].items():
        group = m.get("household")
        if not group:
            continue
        cells = [LABELS.get(name, name), f"{m['threshold']:.4f}"]
        for cond in _conditions(group):
            cells += _at_threshold(group, "household", cond)
        out.append("| " + " | ".join(cells) + " |")
    return out


def _speech_fas(group: dict, cond: str) -> str:
    """False accepts at the model's own threshold on all ordinary negative speech of a condition
    (real and synthetic; the adversarial confusables apart)."""
    slug = cond.replace(" ", "")
    negs = [
        v for k, v in group["calibrated"].items() if k.endswith(f"-{slug}-neg") and not k.startswith(HARD_NEGATIVES)
    ]
    hours = sum(v["hours"] for v in negs)
    return f"{sum(v['false_accepts'] for v in negs)} in {hours:.1f} h" if negs else "-"


def others_rows(measured: dict, target: float = 0.5) -> list[str]:
    out = []
    for name, m in measured["models"].items():
        group = m.get("others")
        if not group:
            continue
        cells = [LABELS.get(name, name)]
        conds = _conditions(group)
        cells += [_at_threshold(group, "real", cond)[0] for cond in conds]
        cells += [_speech_fas(group, cond) for cond in conds]
        cells.append(
            " / ".join(
                str(group["calibrated"].get(f"{HARD_NEGATIVES}-{c.replace(' ', '')}-neg", {}).get("false_accepts", "-"))
                for c in conds
            )
        )
        for source in ("real", "synthetic"):
            cells += [_miss_cell(group, source, cond, target) for cond in conds]
        out.append("| " + " | ".join(cells) + " |")
    return out


def write_report(args, hh, measured: dict) -> Path:
    loop = Path(args.loop_build)
    collected = json.loads((loop / "field" / "collected.json").read_text())
    recorded_stamp = loop / "record" / "recorded.json"
    recorded = json.loads(recorded_stamp.read_text()) if recorded_stamp.exists() else {"kept": 0, "played": 0}
    manifest = loop / "after" / "dataset" / "manifest.json"
    origins = json.loads(manifest.read_text())["sources"].get("recordings", {}) if manifest.exists() else {}
    counts = hh.counts()
    later = {t["slug"]: t for t in measured["tests"].get("household", [])}
    later_h = later.get("household-clean-neg", {}).get("hours", 0.0)
    confusables = (
        next(
            (t.get("clips") for t in measured["tests"].get("others", []) if t["slug"].startswith(HARD_NEGATIVES)), None
        )
        or "?"
    )
    lines = [
        f'# One turn of the field loop: "{args.keyword}"',
        "",
        f"Household: {', '.join(args.household)} (real recordings of `../shared/data`), split by file into periods:",
        "",
        f"- **recorded**: {counts['recorded']} keyword takes played into `wakeword record --input`; it kept "
        f"{recorded['kept']} (`recordings/{args.keyword}/positive/`).",
        f"- **field**: {counts['field_keyword']} takes and {counts['field_other']} other utterances through the "
        f"daemon, clean and in real noise, `[save]` on at threshold {collected['review_threshold']:g}: "
        f"**{collected['true_accept']} true accepts and {collected['false_accept']} false accepts** saved and "
        "reviewed (`recordings/.../field/`).",
        f"- **later**: {counts['later_keyword']} takes and {counts['later_other']} other utterances that no model "
        f"heard, to measure on ({later_h:.2f} h of other speech per condition).",
        "",
        f"The fine-tune's dataset imported: {json.dumps(origins) if origins else 'see its manifest'}.",
        "",
        "Models: the shipped one; a **control** fine-tune of it (`make finetune`: configs/finetune.toml, same "
        "recipe, seed and steps) without the household's audio; and the same fine-tune **with** it. "
        "after - control is what the loop did; control - before is what fine-tuning alone did.",
        "",
        "## The household, later (its own voices)",
        "",
        "Each model at its own shipped threshold (`make export` calibrates it on held-out synthetic speech):",
        "",
        "| model | threshold | takes missed, clean | false accepts, clean | takes missed, 10 dB "
        "| false accepts, 10 dB |",
        "|---|---:|---:|---:|---:|---:|",
        *household_rows(measured),
        "",
        "## Everyone else (no regression?)",
        "",
        "The real recordings of the speakers outside the household and the held-out synthetic voices of the "
        "benchmark: misses and false accepts on all their other speech at each model's own threshold, then "
        "misses with the threshold swept to 0.5 false accepts per hour on that speech. Near-homophones "
        '("commuter", "calm pewter"... by the held-out voices, 2 s apart) are counted apart:',
        "",
        f"| model | real miss, clean | real miss, 10 dB | false accepts, clean | false accepts, 10 dB "
        f"| near-homophones fired (of {confusables}), clean / 10 dB "
        "| real miss @ 0.5 FA/h, clean | real, 10 dB | synthetic miss @ 0.5 FA/h, clean | synthetic, 10 dB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *others_rows(measured),
        "",
        f"Scores: the daemon (`wakeword listen --input`) on every test WAV; details in `{loop}/measured.json`. "
        f"Command: `make loop` (`python -m bench.fieldloop --keyword {args.keyword} --build {args.build}`).",
        "",
    ]
    path = loop / "loop-report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
