"""Pictures of a training run (matplotlib, Agg backend), redrawn at every validation.

- ``curves.png``: training loss (smoothed) and validation frame loss over steps, the learning
  rate, and the miss rate at 0.5 false accepts/h of every evaluation set over steps;
- ``det.png``: the DET curve of every set at the latest validation: miss rate against false
  accepts per hour (log scale), with the 0.1/h and 0.5/h operating points marked;
- ``examples.png``: a few streams as the model hears them -- the front end's embeddings on top,
  keyword windows and the predicted probability underneath, with the threshold that gives
  0.5 false accepts/h.

Files are written atomically, so a viewer that reloads them never sees half a PNG.
"""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from device.fsutil import atomic_path  # noqa: E402
from device.params import AudioParams  # noqa: E402

log = logging.getLogger(__name__)

EXAMPLE_WINDOW_S = 12.0
"""Seconds of each example stream drawn (around its first keyword, or its highest score)."""


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_all(out_dir: Path, history: dict, results: dict, sets: list, params: AudioParams, examples: int = 4) -> None:
    """All three figures; a failure to draw is logged, never fatal to training."""
    try:
        curves(out_dir / "curves.png", history)
        if results:
            det(out_dir / "det.png", results)
            example_streams(out_dir / "examples.png", results, sets, params, examples)
    except Exception as exc:  # a plot is never worth losing a training run over
        log.warning("could not draw the plots: %s", exc)


def curves(path: Path, history: dict) -> None:
    train, val = history.get("train", []), history.get("val", [])
    fig, (ax_loss, ax_miss) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    if train:
        steps = [h["step"] for h in train]
        ax_loss.plot(steps, [h["loss"] for h in train], label="train loss (smoothed)", color="C0")
        ax_lr = ax_loss.twinx()
        ax_lr.plot(steps, [h["lr"] for h in train], color="0.6", lw=0.8, ls=":", label="learning rate")
        ax_lr.set_ylabel("learning rate", color="0.5")
    loss_keys = sorted({k for h in val for k in h if k.endswith("/frame_loss")})
    for i, key in enumerate(loss_keys):
        ax_loss.plot(
            [h["step"] for h in val if key in h],
            [h[key] for h in val if key in h],
            "o-",
            color=f"C{i + 1}",
            label=f"{key.split('/')[0]} val loss",
        )
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("frame loss")
    ax_loss.legend(loc="upper right", fontsize=8)
    ax_loss.grid(alpha=0.3, which="both")
    for i, key in enumerate(sorted({k for h in val for k in h if k.endswith("/miss@0.5")})):
        ax_miss.plot(
            [h["step"] for h in val if key in h],
            [h[key] for h in val if key in h],
            "o-",
            color=f"C{i}",
            label=key.split("/")[0],
        )
    ax_miss.set_ylim(-0.02, 1.02)
    ax_miss.set_ylabel("miss rate at 0.5 false accepts/h")
    ax_miss.set_xlabel("step")
    ax_miss.grid(alpha=0.3)
    if val:
        ax_miss.legend(fontsize=8)
    fig.suptitle("training curves")
    _save(fig, path)


def det(path: Path, results: dict) -> None:
    fig, ax = plt.subplots(figsize=(7, 5))
    for i, (name, r) in enumerate(results.items()):
        floor = 0.5 / max(r.curve.negative_hours, 1e-9)  # "zero per hour", drawn at half the resolution
        fa, miss = det_envelope(r.curve.fa_per_hour, r.curve.miss_rate)
        ax.step(
            np.maximum(fa, floor),
            miss,
            where="post",
            color=f"C{i}",
            label=f"{name} ({r.keywords} kw, {r.curve.negative_hours:.2f} neg h)",
        )
        for target, marker in ((0.5, "o"), (0.1, "s")):
            thr, m = r.curve.at_fa(target)
            at = np.flatnonzero(r.curve.thresholds == thr)
            x = r.curve.fa_per_hour[at[0]] if len(at) else target
            ax.plot([max(x, floor)], [m], marker, color=f"C{i}", ms=6)
    for target in (0.1, 0.5):
        ax.axvline(target, color="0.7", ls="--", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("false accepts per hour (log)")
    ax.set_ylabel("miss rate")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    ax.set_title("DET curve (circle: 0.5 FA/h, square: 0.1 FA/h; zero FAs drawn at 0.5/negative hours)", fontsize=9)
    _save(fig, path)


def det_envelope(fa_per_hour: np.ndarray, miss_rate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The best miss rate reachable at each false-accept rate (points sorted by FA/h)."""
    ok = np.isfinite(fa_per_hour) & np.isfinite(miss_rate)
    order = np.argsort(fa_per_hour[ok], kind="stable")
    fa, miss = fa_per_hour[ok][order], miss_rate[ok][order]
    return fa, np.minimum.accumulate(miss) if len(miss) else miss


def _window(stream, spans, params: AudioParams) -> tuple[float, float]:
    """(start_s, end_s) of the part of a stream worth drawing."""
    total = len(stream.probs) * stream.frame_s
    if spans:
        centre = spans[0][1]
    else:
        centre = (int(np.argmax(stream.probs)) + 1) * stream.frame_s if len(stream.probs) else 0.0
    start = min(max(0.0, centre - EXAMPLE_WINDOW_S / 2), max(0.0, total - EXAMPLE_WINDOW_S))
    return start, min(total, start + EXAMPLE_WINDOW_S)


def example_streams(path: Path, results: dict, sets: list, params: AudioParams, count: int) -> None:
    chosen = []
    for s in sets:
        if s.name in results:
            chosen += [(s, i) for i in s.examples]
    # spread the picks over sets: positives and negatives of each
    chosen = chosen[:: max(1, len(chosen) // max(count, 1))][:count]
    if not chosen:
        return
    fig, axes = plt.subplots(
        2 * len(chosen), 1, figsize=(10, 3.2 * len(chosen)), gridspec_kw={"height_ratios": [2, 1] * len(chosen)}
    )
    for k, (s, i) in enumerate(chosen):
        r = results[s.name]
        st = r.streams[i]
        a, b = _window(st, s.spans[i], params)
        f0, f1 = int(a / params.output_hop_s), int(b / params.output_hop_s)
        ax_spec, ax_p = axes[2 * k], axes[2 * k + 1]
        ax_spec.imshow(
            s.feats[i][f0:f1].T, origin="lower", aspect="auto", cmap="magma", extent=(a, b, 0, s.feats[i].shape[1])
        )
        kind = "keyword" if s.spans[i] else "negative"
        ax_spec.set_title(f"{s.name} stream {i} ({kind}): the front end's embeddings", fontsize=9)
        ax_spec.set_ylabel("embedding")
        t = (np.arange(len(st.probs)) + 1) * st.frame_s
        sel = (t >= a) & (t <= b)
        for start_s, end_s in s.spans[i]:
            ax_p.axvspan(start_s, end_s, color="C2", alpha=0.25, lw=0)
            ax_p.axvspan(end_s, end_s + params.label_window_ms / 1000, color="C2", alpha=0.55, lw=0)
        if s.labels is not None:
            lab = s.labels[i][f0:f1]
            ax_p.plot(a + (np.arange(len(lab)) + 1) * params.output_hop_s, lab, color="C2", lw=1, label="label")
        ax_p.plot(t[sel], st.probs[sel], color="C0", lw=1.2, label="prediction")
        thr = r.curve.at_fa(0.5)[0]
        ax_p.axhline(thr, color="C3", ls="--", lw=0.8, label=f"threshold @0.5 FA/h ({thr:.2f})")
        ax_p.set_xlim(a, b)
        ax_p.set_ylim(-0.05, 1.05)
        ax_p.set_ylabel("p(keyword)")
        ax_p.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("time (s); green: spoken keyword (light) and label window (dark)")
    fig.tight_layout()
    _save(fig, path)
