"""Example clip pictures: the log-mel spectrogram with its labels underneath (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from device.fsutil import atomic_path
from device.params import AudioParams


def draw_clip(
    path: str | Path, features: np.ndarray, labels: np.ndarray, meta: dict, params: AudioParams, title: str = ""
) -> None:
    """PNG of the log-mel ``features`` ``[frames, n_mels]`` (10 ms frames, drawn transposed: time
    runs left to right) over ``labels`` ``[output frames]`` (80 ms), with each placed utterance marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame_s = params.hop_ms / 1000
    seconds = features.shape[0] * frame_s
    fig, (ax_spec, ax_lab) = plt.subplots(2, 1, figsize=(11, 4.2), sharex=True, gridspec_kw={"height_ratios": [4, 1]})
    # Colour range from the clip's own levels, so a quiet background is not drawn as black.
    vmin, vmax = np.percentile(features, [2, 99.9])
    ax_spec.imshow(
        features.T,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=vmin,
        vmax=vmax,
        extent=(0, seconds, 0, features.shape[1]),
    )
    ax_spec.set_ylabel("mel band")
    for kw in meta.get("keywords", []):
        ax_spec.axvspan(kw["start_s"], kw["end_s"], color="lime", alpha=0.15)
        ax_spec.text(kw["start_s"], features.shape[1] - 2, kw["voice"], color="lime", fontsize=7, va="top")
    for neg in meta.get("negatives", []):
        ax_spec.text(neg["start_s"], 2, neg["text"][:24], color="cyan", fontsize=7)
    ax_spec.set_title(f"{title}  background {meta.get('background')}  SNR {meta.get('snr_db')} dB", fontsize=9)
    t = (np.arange(len(labels)) + 1) * params.output_hop_s  # output frame t ends at (t + 1) hops
    ax_lab.fill_between(t, labels, step="pre", color="tab:green")
    ax_lab.set_ylim(-0.1, 1.1)
    ax_lab.set_yticks([0, 1])
    ax_lab.set_ylabel("label")
    ax_lab.set_xlabel("time (s)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
