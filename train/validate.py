"""Detection-level validation: score whole streams with the model, count what the Pi would do.

An :class:`EvalSet` is a named list of embedding sequences with the keyword spans in each
(positive streams) or none (negative streams). :func:`score` runs the model over them (in
eval mode, whole streams from zero state, which equals streaming chunk by chunk); the
detections come from the device's own decision rule via :func:`train.metrics.det_curve`.
The figure that picks the best checkpoint is the miss rate at a fixed number of false
accepts per hour on held-out synthetic voices; real-voice sets are reported beside it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.nn import functional as F

from device.decision import DEFAULT_REFRACTORY_S, DEFAULT_SMOOTHING_FRAMES, DecisionConfig
from device.params import AudioParams
from train.metrics import DetCurve, ScoredStream, det_curve, evaluate
from train.model import Head, Heads

log = logging.getLogger(__name__)

REPORT_FA_PER_HOUR = (0.5, 0.1, 1.0, 5.0)
"""Operating points reported for every set (false accepts per hour)."""


@dataclass
class EvalSet:
    name: str
    feats: list[np.ndarray]
    """float32 ``[frames, 96]`` embeddings per stream (80 ms frames)."""
    spans: list[list[tuple[float, float]]]
    """Keyword ``(start_s, end_s)`` per stream (empty list: a negative stream)."""
    labels: list[np.ndarray] | None = None
    """Optional per-frame labels float32 ``[frames]`` (for the frame loss)."""
    examples: list[int] = field(default_factory=list)
    """Stream indices worth plotting (a few positives and negatives)."""
    ignore: list[list[tuple[float, float]]] | None = None
    """Per stream, stretches set apart from the false-accept count (sound-alikes of the keyword)."""

    @property
    def keywords(self) -> int:
        return sum(len(s) for s in self.spans)

    def hours(self, params: AudioParams) -> float:
        return sum(len(f) for f in self.feats) * params.output_hop_s / 3600


CONFUSABLE_GUARD_S = 1.0
"""A detection up to this long after a sound-alike ends is that sound-alike's (as for keywords)."""


def from_clipset(clips, name: str, max_clips: int | None = None) -> EvalSet:
    """The clips of a dataset split (``train.dataset.ClipSet``) as an :class:`EvalSet`. The
    clips' sound-alikes of the keyword (confusables) are set apart from the false-accept count,
    as calibration and the benchmark count them: they are far denser here than in real life,
    and a few near-homophones by TTS voices would otherwise alone decide the operating point."""
    n = len(clips) if max_clips is None else min(len(clips), max_clips)
    feats, spans, labels, ignore = [], [], [], []
    for i in range(n):
        meta = clips.meta(i)
        feats.append(np.asarray(clips.features(i), np.float32))
        labels.append(np.asarray(clips.labels(i), np.float32))
        spans.append([(float(k["start_s"]), float(k["end_s"])) for k in meta.get("keywords", [])])
        ignore.append(
            [
                (float(u["start_s"]), float(u["end_s"]) + CONFUSABLE_GUARD_S)
                for u in meta.get("negatives", [])
                if u.get("kind") == "confusable"
            ]
        )
    return EvalSet(name, feats, spans, labels, _pick_examples(spans), ignore)


def from_streams(streams, params: AudioParams, name: str, cache_dir=None) -> EvalSet:
    """Audio streams (:class:`train.streams.Stream`) -> embeddings, computed by the shared front end.

    With ``cache_dir`` the embeddings are stored as ``<name>-emb-<key>.npz``, keyed by the
    audio itself and the audio parameters (which name the front end), and read back next time.
    """
    feats = _embeddings(streams, params, name, cache_dir)
    spans = [list(s.keyword_spans) for s in streams]
    ignore = [list(getattr(s, "ignore_spans", [])) for s in streams]
    return EvalSet(name, feats, spans, None, _pick_examples(spans), ignore)


def _embeddings(streams, params: AudioParams, name: str, cache_dir) -> list[np.ndarray]:
    import hashlib
    from pathlib import Path

    from device.fsutil import atomic_path
    from train.frontend import features
    from train.streams import prune_cache, touch_cache

    path = None
    if cache_dir is not None:
        h = hashlib.sha256(params.to_json().encode())
        for s in streams:
            h.update(np.ascontiguousarray(s.audio, np.float32).tobytes())
        path = Path(cache_dir) / f"{name}-emb-{h.hexdigest()[:16]}.npz"
        if path.is_file():
            try:
                with np.load(path) as data:
                    loaded = [data[f"s{i}"].astype(np.float32) for i in range(len(streams))]
                touch_cache(path)
                return loaded
            except (OSError, ValueError, KeyError):
                log.warning("unreadable embedding cache %s: computing again", path)
    # stored as float16 like the dataset's, so a cached run sees exactly what a fresh one did
    half = [features(s.audio, params).astype(np.float16) for s in streams]
    if path is not None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, allow_pickle=False, **{f"s{i}": x for i, x in enumerate(half)})
        prune_cache(path, f"{name}-emb")
    return [x.astype(np.float32) for x in half]


def _pick_examples(spans: list[list], per_kind: int = 2) -> list[int]:
    pos = [i for i, s in enumerate(spans) if s][:per_kind]
    neg = [i for i, s in enumerate(spans) if not s][:per_kind]
    return pos + neg


@torch.no_grad()
def predict(
    model: Head | Heads, feats: list[np.ndarray], device: torch.device, batch_frames: int = 200_000
) -> list[np.ndarray]:
    """Logits float32 ``[frames]`` per sequence; batched by similar length.

    Padding goes at the end and the model is causal, so padded frames never change the
    outputs that are kept.
    """
    was_training = model.training
    model.eval()
    order = sorted(range(len(feats)), key=lambda i: len(feats[i]))
    out: list[np.ndarray | None] = [None] * len(feats)
    start = 0
    while start < len(order):
        longest = len(feats[order[start]])
        end = start + 1
        while end < len(order) and (end - start + 1) * len(feats[order[end]]) <= batch_frames:
            end += 1
        idx = order[start:end]
        longest = max(len(feats[i]) for i in idx)
        batch = np.zeros((len(idx), longest, feats[idx[0]].shape[1]), np.float32)
        for row, i in enumerate(idx):
            batch[row, : len(feats[i])] = feats[i]
        logits = model(torch.from_numpy(batch).to(device)).float().cpu().numpy()
        for row, i in enumerate(idx):
            out[i] = logits[row, : len(feats[i])]
        start = end
    model.train(was_training)
    return out  # type: ignore[return-value]


@dataclass
class SetResult:
    name: str
    curve: DetCurve
    hours: float
    keywords: int
    frame_loss: float | None
    streams: list[ScoredStream]
    transfer: dict | None = None
    """At the reference set's operating threshold: ``{"threshold", "miss", "fa_per_hour"}``."""

    def miss_at(self, fa_per_hour: float) -> float:
        return self.curve.at_fa(fa_per_hour)[1]

    def summary(self) -> dict:
        out = {
            "keywords": self.keywords,
            "hours": round(self.hours, 4),
            "negative_hours": round(self.curve.negative_hours, 4),
        }
        for fa in REPORT_FA_PER_HOUR:
            thr, miss = self.curve.at_fa(fa)
            out[f"miss@{fa:g}"] = miss
            out[f"thr@{fa:g}"] = thr
        if self.frame_loss is not None:
            out["frame_loss"] = self.frame_loss
        if self.transfer is not None:
            out["miss@ref_thr"] = self.transfer["miss"]
            out["fa_h@ref_thr"] = self.transfer["fa_per_hour"]
        return out


def evaluate_set(
    model: Head | Heads,
    evalset: EvalSet,
    params: AudioParams,
    device: torch.device,
    smoothing_frames: int = DEFAULT_SMOOTHING_FRAMES,
    refractory_s: float = DEFAULT_REFRACTORY_S,
    tolerance_s: float = 1.0,
) -> SetResult:
    logits = predict(model, evalset.feats, device)
    frame_s = params.output_hop_s
    ignore = evalset.ignore or [[] for _ in logits]
    streams = [
        ScoredStream(1.0 / (1.0 + np.exp(-lg.astype(np.float64))), frame_s, spans, f"{evalset.name}/{i}", list(skip))
        for i, (lg, spans, skip) in enumerate(zip(logits, evalset.spans, ignore))
    ]
    loss = None
    if evalset.labels is not None:
        total = count = 0.0
        for lg, lab in zip(logits, evalset.labels):
            y = np.asarray(lab, np.float32)[: len(lg)]
            total += float(
                F.binary_cross_entropy_with_logits(torch.from_numpy(lg[: len(y)]), torch.from_numpy(y), reduction="sum")
            )
            count += len(y)
        loss = total / max(count, 1.0)
    curve = det_curve(streams, smoothing_frames=smoothing_frames, refractory_s=refractory_s, tolerance_s=tolerance_s)
    return SetResult(evalset.name, curve, evalset.hours(params), evalset.keywords, loss, streams)


def validate(
    model: Head | Heads,
    sets: list[EvalSet],
    params: AudioParams,
    device: torch.device,
    reference: str | None = None,
    reference_fa_per_hour: float = 0.5,
    smoothing_frames: int = DEFAULT_SMOOTHING_FRAMES,
    refractory_s: float = DEFAULT_REFRACTORY_S,
    tolerance_s: float = 1.0,
) -> dict[str, SetResult]:
    """Every set scored; keys are the set names, in the given order.

    With ``reference`` (a set name), every other set is also evaluated at the threshold that
    gives ``reference_fa_per_hour`` on the reference set -- what a model calibrated on held-out
    synthetic voices (as export does) would do on that set: ``SetResult.transfer``.
    """
    results = {
        s.name: evaluate_set(
            model,
            s,
            params,
            device,
            smoothing_frames=smoothing_frames,
            refractory_s=refractory_s,
            tolerance_s=tolerance_s,
        )
        for s in sets
    }
    if reference in results:
        thr = results[reference].curve.at_fa(reference_fa_per_hour)[0]
        decision = DecisionConfig(min(thr, 1 - 1e-9), smoothing_frames, refractory_s)
        for name, r in results.items():
            if name != reference:
                out = evaluate(r.streams, decision, tolerance_s)
                r.transfer = {"threshold": thr, "miss": out.miss_rate, "fa_per_hour": out.fa_per_hour}
    return results
