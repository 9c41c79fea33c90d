"""``<build>/bench/report.md`` (one page for people), ``report.json`` (everything, for tools), PNGs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TypeGuard

from bench import plots
from device.fsutil import atomic_write_text


def _pct(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"


def _num(x, fmt: str = ".2f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _ratio(peer, ours) -> str:
    if peer is None or ours is None or any(isinstance(v, float) and math.isnan(v) for v in (peer, ours)):
        return "-"
    if ours == 0:
        return "ours 0" if peer > 0 else "="
    return f"x{peer / ours:.2f}"


def _panels(result: dict) -> list[tuple[str, str]]:
    found = {(s["source"], s["condition"]) for e in result["engines"].values() for s in e.get("sets", [])}
    return sorted(found, key=lambda p: (p[0] != "real", p[1] != "clean", p))


def _set(engine: dict, source: str, condition: str) -> dict | None:
    return next((s for s in engine.get("sets", []) if (s["source"], s["condition"]) == (source, condition)), None)


def _point(engine: dict, source: str, condition: str, target: float) -> dict | None:
    s = _set(engine, source, condition) or {}
    return next((p for p in s.get("points", []) if p["target_fa_per_hour"] == target), None)


def _reached(p: dict | None) -> TypeGuard[dict]:
    """False when no swept setting met the target (a peer swept by sensitivity whose lowest one
    still fires too often): its "miss rate" there is not a measurement."""
    fa = None if p is None else p.get("fa_per_hour")
    return p is not None and not (isinstance(fa, float) and math.isnan(fa) and p.get("sensitivity", 0) is None)


def _miss(engine: dict, source: str, condition: str, target: float):
    p = _point(engine, source, condition, target)
    return p["miss_rate"] if _reached(p) else None


def _miss_cell(engine: dict, source: str, condition: str, target: float) -> str:
    """The miss rate and, where the bench resampled it, its interval: ``11.9 % (7.1-21.3)``."""
    p = _point(engine, source, condition, target)
    if p is not None and not _reached(p):
        return "not reached"
    cell = _pct(_miss(engine, source, condition, target))
    lo, hi = (p or {}).get("miss_low"), (p or {}).get("miss_high")
    if isinstance(lo, float) and isinstance(hi, float) and not (math.isnan(lo) or math.isnan(hi)):
        cell += f" ({100 * lo:.1f}-{100 * hi:.1f})"
    return cell


def headline(result: dict) -> list[str]:
    """Rows: engine x voices; columns: miss rate at each target FA/h per condition, CPU, memory.
    A peer gets a second row: its figures divided by ours."""
    targets = result["config"]["fa_targets_per_hour"]
    conditions = sorted({c for _, c in _panels(result)}, key=lambda c: (c != "clean", c))
    cols = [(c, t) for c in conditions for t in targets]
    lines = [
        "| engine | voices | "
        + " | ".join(f"miss @ {t:g} FA/h, {c}" for c, t in cols)
        + " | CPU s / audio h | peak RSS |",
        "|---|---" + "|---:" * (len(cols) + 2) + "|",
    ]
    ours = result["engines"].get("ours", {})
    for name, e in result["engines"].items():
        sources = dict.fromkeys(s for s, _ in _panels(result) if any(_set(e, s, c) for c in conditions)) or {"-": None}
        for k, source in enumerate(sources):
            cost = (
                f"{_num(e.get('cpu_s_per_audio_hour'), '.1f')} | {_num(e.get('max_rss_mb'), '.0f')} MiB"
                if k == 0
                else " | "
            )
            lines.append(
                f"| {name if k == 0 else ''} | {source} | "
                + " | ".join(_miss_cell(e, source, c, t) for c, t in cols)
                + f" | {cost} |"
            )
        if e.get("kind") != "peer" or not ours:
            continue
        for k, source in enumerate(sources):
            ratio_cost = (
                f"{_ratio(e.get('cpu_s_per_audio_hour'), ours.get('cpu_s_per_audio_hour'))} | "
                f"{_ratio(e.get('max_rss_mb'), ours.get('max_rss_mb'))}"
                if k == 0
                else " | "
            )
            lines.append(
                f"| {'*' + name + ' / ours*' if k == 0 else ''} | {source} | "
                + " | ".join(_ratio(_miss(e, source, c, t), _miss(ours, source, c, t)) for c, t in cols)
                + f" | {ratio_cost} |"
            )
    return lines


def side_lines(result: dict) -> list[str]:
    """Per engine, at its first target's operating point (real-voice threshold where there is one):
    false accepts on the real negatives alone, and the confusables that fired."""
    target = result["config"]["fa_targets_per_hour"][0]
    lines = []
    for name, e in result["engines"].items():
        by_label: dict[str, list[str]] = {}
        for cond in sorted({s["condition"] for s in e.get("sets", [])}, key=lambda c: (c != "clean", c)):
            sets = sorted((s for s in e["sets"] if s["condition"] == cond), key=lambda s: s["source"] != "real")
            s = sets[0]
            k = next(i for i, p in enumerate(s["points"]) if p["target_fa_per_hour"] == target)
            for label, rows in (s.get("side") or {}).items():
                r = rows[k]
                by_label.setdefault(label, []).append(
                    (
                        f"{r['false_accepts']}/{r['utterances']} fired"
                        if r["utterances"]
                        else f"{r['false_accepts']} false accepts in {r['hours']:.2f} h"
                    )
                    + f" ({cond})"
                )
        if by_label:
            lines.append(f"- {name}: " + "; ".join(f"{label} {', '.join(v)}" for label, v in by_label.items()))
    if lines:
        lines.insert(
            0,
            f"At the {target:g} FA/h operating points, the real negatives alone and the confusables "
            "(near-homophones of the keyword, never in the pool):",
        )
    return lines


def calibrated(result: dict) -> list[str]:
    """Our model at its own calibrated threshold (what a deployed daemon does by default)."""
    clips = {t["slug"]: t.get("clips") for t in result["tests"]}
    lines = [
        "| audio | keywords | missed | miss rate | hours | false accepts | FA/h |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for slug, r in result["engines"]["ours"]["calibrated"].items():
        what = "keywords" if r["positive"] else ("utterances" if r["source"] == "confusables" else "negatives")
        kw = r["keywords"]
        fas, rate = str(r["false_accepts"]), _num(r["fa_per_hour"])
        if r["source"] == "confusables":  # a count of adversarial words, not a rate per hour
            fas, rate = f"{r['false_accepts']} of {clips.get(slug) or '?'}", "-"
        lines.append(
            f"| {r['source']} {r['condition']} {what} | {kw or '-'} | {kw - r['hits'] if kw else '-'} | "
            f"{_pct(r['miss_rate']) if kw else '-'} | {r['hours']:.2f} | {fas} | {rate} |"
        )
    return lines


def latency_lines(result: dict) -> list[str]:
    per_hop = {c["hop_s"]: c for c in result["cost"]["per_hop"]}
    lines = [
        "| inference step | keywords hit | frame latency median / p95 | event latency median / p95 | "
        "daemon CPU s / audio h |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in result["latency"]:
        c = per_hop.get(r["hop_s"], {})
        lines.append(
            f"| {r['hop_s']:g} s | {r['event']['n']} / {r['keywords']} | "
            f"{_num(r['frame']['median_s'])} / {_num(r['frame']['p95_s'])} s | "
            f"**{_num(r['event']['median_s'])} / {_num(r['event']['p95_s'])} s** | "
            f"{_num(c.get('cpu_s_per_audio_hour'), '.1f')} |"
        )
    for led in result.get("led", []):
        s = led["led"]
        lines.append("")
        lines.append(
            f"LED edge (fake GPIO, WAV played at 1x, step {led['hop_s']:g} s, {led['source']} voices): "
            f"{s['n']} of {led['keywords']} keywords lit it; keyword end -> LED on median "
            f"**{_num(s['median_s'])} s**, p95 {_num(s['p95_s'])} s."
        )
    return lines


def cost_lines(result: dict) -> list[str]:
    lines = [
        "| model | file | streaming step (0.48 s audio) wall / CPU | re-running a 10 s window | "
        "daemon CPU s / audio h | peak RSS |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, s in result["cost"]["step"].items():
        c = result["cost"]["per_model"].get(label, {})
        lines.append(
            f"| {label} | {s['model_bytes'] / 1024:.0f} KiB | {s['stream_wall_ms']:.2f} / "
            f"{s['stream_cpu_ms']:.2f} ms | {s['window_wall_ms']:.1f} ms (x{s['speedup']:.0f}) | "
            f"{_num(c.get('cpu_s_per_audio_hour'), '.1f')} | {_num(c.get('max_rss_mb'), '.0f')} MiB |"
        )
    rows = result["cost"].get("per_keywords") or []
    if rows:
        lines += [
            "",
            "Several keywords in one daemon (`[[keywords]]`, copies of the first model; default step):",
            "",
            "| keywords | daemon CPU s / audio h | peak RSS |",
            "|---:|---:|---:|",
        ]
        lines += [
            f"| {r['keywords']} | {_num(r.get('cpu_s_per_audio_hour'), '.1f')} | "
            f"{_num(r.get('max_rss_mb'), '.0f')} MiB |"
            for r in rows
        ]
    prod = result.get("production", {})
    t, d = prod.get("training"), prod.get("dataset")
    lines.append("")
    lines.append(
        "Training (from `train/last.pt`, not re-measured): "
        + (
            f"{_num(t['clips_per_s'], '.1f')} clips/s, {t['step']} steps x {t['batch_size']} clips, "
            f"{t['elapsed_min']:.1f} min to the model (best step {t['best_step']})."
            if t
            else "no training run found."
        )
    )
    lines.append(
        "Data (from the dataset manifest): "
        + (
            f"{_num(d['clips_per_s'], '.1f')} clips/s mixed, {_num(d['renders_per_s'], '.1f')} TTS renders/s "
            f"({d['workers']} workers); distinct voices {d['distinct_voices']}."
            if d
            else "no dataset manifest found."
        )
    )
    return lines


def tests_lines(result: dict) -> list[str]:
    lines = ["| audio | keywords / utterances | hours | streams |", "|---|---:|---:|---:|"]
    for t in result["tests"]:
        what = "keywords" if t["positive"] else ("utterances" if t["source"] == "confusables" else "negative speech")
        lines.append(
            f"| {t['source']} {t['condition']} {what} | "
            f"{t['keywords'] or t.get('clips') or '-'} | {t['hours']:.2f} | {t['streams']} |"
        )
    return lines


def negatives_note(result: dict) -> str:
    cfg = result["config"]
    hours: dict[str, float] = {}
    for t in result["tests"]:
        if not t["positive"] and t["source"] != "confusables":
            hours[t["condition"]] = hours.get(t["condition"], 0.0) + t["hours"]
    return (
        "False accepts per hour are counted on all ordinary negative speech of a condition ("
        + ", ".join(f"{c}: {h:.2f} h" for c, h in hours.items())
        + ", synthetic and real voices together, plus the gaps between keywords); miss rates per voices. "
        "With `h` hours the smallest non-zero rate is `1/h` per hour, so a target below that means zero "
        'false accepts in those hours. "not reached": even the lowest sensitivity swept for a peer fires '
        "more often than the target (`[bench] peer_sensitivities`)."
        + (
            f" In brackets: the {100 * cfg['interval_level']:g} % bootstrap interval of a miss rate "
            f"({cfg['interval_draws']} resamples of the speakers (a speaker's keywords together; a keyword of "
            f"no known speaker on its own) and of {cfg['interval_block_s']:g} s blocks of "
            "negative audio, the operating point re-chosen on each): an operating point at 0.5 FA/h over a few "
            "hours rests on the two or three highest-scoring negatives, and moves with them."
            if cfg.get("interval_draws")
            else ""
        )
    )


def to_markdown(result: dict, command: str, pictures: dict[str, bool]) -> str:
    m, d = result["model"], result["decision"]
    mism = {k: e["rule_mismatches"] for k, e in result["engines"].items() if e.get("kind") == "ours"}
    lines = [
        f'# Benchmark: "{result["keyword"]}"',
        "",
        f"Model `{m['path']}` (version `{m['version']}`), calibrated threshold **{m['threshold']:.4f}**, "
        f"smoothing {d['smoothing_frames']} frame(s), refractory {d['refractory_s']:g} s; a keyword is hit by "
        f"a detection between its start and {result['tolerance_s']:g} s after its end. "
        f"All of our figures come from the daemon itself (`wakeword listen --input`, one process per WAV); "
        f"its detections equal the decision rule on its printed frame scores: "
        + ("yes" if not any(mism.values()) else f"**no** ({mism})")
        + ".",
        "",
        "## Headline",
        "",
    ]
    lines += headline(result)
    lines += ["", negatives_note(result), ""] + side_lines(result) + [""]
    if pictures.get("det"):
        lines += ["![DET curves](det.png)", ""]
    lines += [f"## At the model's calibrated threshold ({m['threshold']:.4f})", ""] + calibrated(result)
    lines += ["", "## Latency (clean keywords; keyword end by energy in the clean clip)", ""] + latency_lines(result)
    if pictures.get("latency"):
        lines += ["", "![latency histogram](latency.png)"]
    lines += ["", "## Cost (one onnxruntime thread; this machine, not a Pi)", ""] + cost_lines(result)
    lines += ["", "## Test audio", ""] + tests_lines(result)
    for name, e in result["engines"].items():
        if e.get("kind") == "peer" and e.get("note"):
            lines += ["", f"*{name}*: {e['note']}"]
    lines += [
        "",
        "## How this was made",
        "",
        f"`{command}` ({result['seconds'] / 60:.1f} min). Daemon command per WAV: "
        "`wakeword listen --model M --input X.wav --config bench/run/daemon.toml --json --scores "
        "--frame-scores`; latency runs add `--infer-every-s S`; the LED run `--realtime` with the fake "
        "GPIO backend's edge log; cost runs use `daemon-cost.toml` and `--max-audio-s`, and take the "
        "daemon's own CPU count from its first step to its last (its exit log line).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted((result.get("versions") or {}).items())),
        "",
    ]
    for name, e in result["engines"].items():
        if e.get("packages"):
            lines += [f"{name} (own venv under build/peers/): {', '.join(e['packages'])}", ""]
    return "\n".join(lines) + "\n"


def write(result: dict, out_dir: Path, command: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    pictures = {
        "det": plots.det_plot(result, out_dir / "det.png"),
        "latency": plots.latency_plot(result, out_dir / "latency.png"),
    }
    atomic_write_text(out_dir / "report.json", json.dumps(result, indent=1, default=str) + "\n")
    atomic_write_text(out_dir / "report.md", to_markdown(result, command, pictures))
    return out_dir / "report.md"
