"""The report's pictures: DET curves of every engine, and the latency histogram."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from train.metrics import sensible_from

log = logging.getLogger(__name__)

FA_FLOOR_PER_HOUR = 0.01
"""Zero false accepts are drawn at this rate (a log axis has no zero)."""


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def det_plot(result: dict, path: Path) -> bool:
    """One panel per (voices, condition); a line per engine; markers at the target rates."""
    plt = _pyplot()
    panels = sorted(
        {(s["source"], s["condition"]) for e in result["engines"].values() for s in e.get("sets", [])},
        key=lambda p: (p[0] != "real", p[1] != "clean", p),
    )
    if not panels:
        return False
    ncols = min(2, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.2 * ncols, 3.6 * nrows), squeeze=False, sharey=True)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (source, condition) in zip(axes.flat, panels):
        for name, engine in result["engines"].items():
            for s in engine.get("sets", []):
                if (s["source"], s["condition"]) != (source, condition):
                    continue
                fa = np.asarray(s["curve"]["fa_per_hour"], float)
                start = sensible_from(fa)  # below it the rule degenerates
                fa = np.maximum(fa[start:], FA_FLOOR_PER_HOUR)
                miss = np.asarray(s["curve"]["miss_rate"], float)[start:]
                order = np.argsort(fa)
                (line,) = ax.step(fa[order], 100 * miss[order], where="post", label=name)
                for p in s["points"]:  # the operating points, where they really are
                    fa_p = p["fa_per_hour"] if p["fa_per_hour"] == p["fa_per_hour"] else p["target_fa_per_hour"]
                    ax.plot(max(fa_p, FA_FLOOR_PER_HOUR), 100 * p["miss_rate"], "o", color=line.get_color(), ms=4)
        ax.set_xscale("log")
        ax.set_xlim(FA_FLOOR_PER_HOUR * 0.8, 100)
        ax.set_ylim(0, 100)
        for t in result["config"]["fa_targets_per_hour"]:
            ax.axvline(t, color="0.8", lw=0.8, zorder=0)
        ax.set_title(f"{source} voices, {condition}")
        ax.set_xlabel("false accepts per hour")
        ax.grid(True, which="both", alpha=0.3)
    for row in axes:
        row[0].set_ylabel("miss rate (%)")
    axes.flat[0].legend(loc="lower left", fontsize=8)
    fig.text(
        0.99,
        0.005,
        f"grey lines: the target rates; dots: operating points; 0 FA/h drawn at {FA_FLOOR_PER_HOUR:g}",
        ha="right",
        va="bottom",
        fontsize=7,
        color="0.4",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def latency_plot(result: dict, path: Path) -> bool:
    """Histogram of the event latency (keyword end -> detection reported) at each step size."""
    runs = [r for r in result.get("latency", []) if r["event_values_s"]]
    if not runs:
        return False
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.4))
    values = np.concatenate([r["event_values_s"] for r in runs])
    bins = np.linspace(min(0.0, values.min()), max(values.max(), 0.1), 40)
    for r in runs:
        ax.hist(
            r["event_values_s"],
            bins=bins,
            histtype="step",
            lw=1.5,
            label=f"step {r['hop_s']:g} s (median {r['event']['median_s']:.2f} s)",
        )
    ax.set_xlabel("keyword end -> detection reported (s)")
    ax.set_ylabel("keywords")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
