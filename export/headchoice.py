"""Which of a model's heads to ship, chosen on real takes of the keyword that never trained.

A model trained with several heads (``[model] heads``) answers with the mean of their
logits (:func:`train.model.fuse`). Over the four real development keywords all heads together were
the best choice for three,
but for "voyager" the short-recipe head alone missed about half as many real takes at 0.5 false
accepts per hour, and the training's synthetic validation ranks that head worst of all
(docs/experiments.md, "Voyager's second data draw, and which heads hear each keyword"): only real
takes can make this choice. So when there are enough real takes of the keyword that never
trained -- the user's ``recordings/<keyword>/check`` (``make record KIND=check``), their
``recordings/<keyword>/positive`` files outside the ``train`` split, ``[export] keyword_dirs``,
on development machines a share of
``../shared/data``'s speakers (``shared_keyword_share``) -- export scores every candidate subset
of the heads at the calibration target and keeps a smaller one only when it misses clearly fewer
takes: by at least ``choice_margin``, by a sign test over the takes (takes it hears that all
heads miss against the reverse, Bonferroni over the candidates, ``choice_alpha``), *and* in at
least ``choice_confidence`` of ``choice_draws`` bootstrap resamples of the calibration's negative
streams and of the takes, each subset's threshold chosen afresh on every draw (:func:`bootstrap_wins`).
The sign test sees only which takes were drawn; a threshold at 0.5 false accepts per hour rests
on the two or three highest-scoring negatives, and the bootstrap sees how much that moves.
Otherwise all heads stay, and the report says why.

Scores come from PyTorch, one whole-stream pass each (the front end once, each head on its
embeddings: what the exported graph computes, see the parity check). Each subset's threshold is
chosen on the same negative streams and basis as the final calibration, so "misses at 0.5 FA/h"
means here what it means in the report. The chosen model is then exported and calibrated as usual.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.params import AudioParams
from export.calib_streams import CalibrationDataError, Source
from train.metrics import ScoredStream, SweepOutcomes, evaluate, resample_weights
from train.streams import Clip, Stream

log = logging.getLogger(__name__)

TAKE_GROUPS = ("takes clean", "takes + noise")
"""The two copies of every take: as recorded, and over background noise at ``[streams] snr_db``."""


@dataclass(frozen=True)
class Takes:
    """Real takes of the keyword that never trained, one :class:`~train.streams.Clip` per keyword."""

    clips: tuple[Clip, ...]
    origins: tuple[str, ...] = ()
    """Where they come from (the report names them)."""
    shared_speakers: tuple[str, ...] = ()
    """``../shared/data`` speakers among them (``make bench`` leaves them out of its figures)."""
    noise_files: tuple[Path, ...] = ()
    """Real background recordings for the noisy copy (else generated noise)."""
    unreadable: int = 0


@dataclass
class HeadChoice:
    """What the choice saw and decided (``report.json`` / the model's ``training.head_choice``)."""

    heads: int
    """Heads the checkpoint has."""
    kept: tuple[int, ...]
    """Heads shipped (all of them unless a subset won clearly)."""
    reason: str
    takes: int = 0
    origins: tuple[str, ...] = ()
    shared_speakers: tuple[str, ...] = ()
    candidates: list[dict] = field(default_factory=list)
    """Per candidate subset: heads, threshold, missed (of ``2 * takes``), miss rate, target met."""
    sign_test: dict = field(default_factory=dict)
    """Best subset against all heads: takes it hears better / worse, p-value (Bonferroni)."""
    bootstrap: dict = field(default_factory=dict)
    """Best subset against all heads over resampled negatives and takes: draws, share it won."""

    def to_dict(self) -> dict:
        """JSON-ready (tuples become lists when written)."""
        return dataclasses.asdict(self)


def keyword_takes(xc, cfg: dict, keyword: str, build: Path, params: AudioParams) -> Takes:
    """The real keyword takes the choice may use: every file of ``[export] keyword_dirs`` and of
    ``recordings/<keyword>/check``, the user's ``positive`` recordings outside the ``train``
    split, and ``shared_keyword_share`` of
    ``../shared/data``'s speakers (never one who trained)."""
    from train import config, evalsets, realdata
    from train.audio_io import AUDIO_KINDS, list_audio_files
    from train.dataconfig import DataConfig
    from train.sources import recording_split

    dc = config.section(cfg, "data", DataConfig)
    files: list[tuple[Path, tuple[float, float] | None]] = []
    origins: list[str] = []
    for folder in xc.keyword_dirs:
        found = list_audio_files(folder) if Path(folder).is_dir() else []
        if not found:
            raise CalibrationDataError(f"[export] keyword_dirs: {folder} holds no {AUDIO_KINDS} files")
        files += [(p, None) for p in found]
        origins.append(str(folder))
    root = Path(dc.recordings_dir) / keyword
    check = list_audio_files(root / "check") if (root / "check").is_dir() else []
    if check:  # `make record KIND=check`: never trains
        files += [(p, None) for p in check]
        origins.append(str(root / "check"))
    mine = root / "positive"
    held = [p for p in (list_audio_files(mine) if mine.is_dir() else []) if recording_split(p, dc) != "train"]
    if held:
        files += [(p, None) for p in held]
        origins.append(f"{mine} (the files outside the train split)")
    shared: list[str] = []
    if xc.shared_keyword_share > 0:
        trained = set(evalsets.build_trained_speakers(build))
        spans = realdata.keyword_spans()
        chosen = [
            c
            for c in realdata.keyword_clips(keyword)
            if realdata.speaker_position(c.speaker) >= 1.0 - xc.shared_keyword_share and c.speaker not in trained
        ]
        files += [(c.path, spans.get(c.path)) for c in chosen]
        shared = sorted({c.speaker for c in chosen})
        origins += ["../shared/data"] if chosen else []
    noise = [p for d in dc.background_dirs for p in list_audio_files(d)]
    if shared:
        noise += [c.path for c in realdata.noise_clips()]
    clips, unreadable = _clips(files, params)
    return Takes(tuple(clips), tuple(origins), tuple(shared), tuple(noise), unreadable)


def _clips(files, params: AudioParams) -> tuple[list[Clip], int]:
    """One clip per keyword: a file's labelled spans (cut apart at the midpoints between them), its
    known span, or where its speech is; a file labelled as not the keyword is left out."""
    from train.audio_io import AudioReadError, read_audio
    from train.label.labels import KEYWORD_KINDS
    from train.sources import user_label
    from train.streams import speech_span_s

    clips, unreadable = [], 0
    for path, known in files:
        label = user_label(path)
        if label is not None and label.kind not in KEYWORD_KINDS and label.kind != "unlabeled":
            continue
        try:
            audio = read_audio(path, params)
        except AudioReadError as exc:
            log.warning("head choice: skipping %s", exc)
            unreadable += 1
            continue
        spans = list(label.keyword_spans if label is not None else ()) or [known or speech_span_s(audio, params)]
        spans.sort()
        sr = params.sample_rate
        cuts = [0.0] + [(a[1] + b[0]) / 2 for a, b in itertools.pairwise(spans)] + [len(audio) / sr]
        for k, (start, end) in enumerate(spans):
            lo, hi = round(cuts[k] * sr), round(cuts[k + 1] * sr)
            start, end = max(start, lo / sr), min(end, hi / sr)  # a span past the audio's end
            if end <= start or hi - lo < sr // 10:
                continue
            clips.append(Clip(audio[lo:hi], (start - lo / sr, end - lo / sr), f"{path.name}#{k}"))
    return clips, unreadable


def take_streams(takes: Takes, params: AudioParams, streams_cfg, seed: int) -> list[Stream]:
    """Each take in a stream of its own, once clean and once over noise at ``streams_cfg.snr_db``:
    ``2 * len(takes.clips)`` streams, the clean copies first (one take per stream, so every take's
    outcome can be read off on its own)."""
    from export.heldout import _real_noise, noise_recordings
    from train.streams import positive_streams

    noise = _real_noise(takes.noise_files, params) or noise_recordings(params, [], seed)
    one = dataclasses.replace(streams_cfg, keywords_per_stream=1)
    out: list[Stream] = []
    for group, snr in zip(TAKE_GROUPS, (None, streams_cfg.snr_db)):
        out += positive_streams(list(takes.clips), params, one, noise if snr is not None else (), snr, seed, group)
    return out


def head_logits(det, audio: np.ndarray) -> np.ndarray:
    """Each head's logits ``[heads, frames]`` for ``audio`` from zero state, in one pass."""
    import torch

    from export.scoring import usable

    hop = det.params.output_hop_samples
    x = torch.from_numpy(usable(np.asarray(audio, np.float32), hop).copy())[None]
    with torch.no_grad():
        emb, _ = det.frontend.step(x, det.frontend.initial_state(1))
        return np.stack([h.step(emb, h.initial_state(1))[0][0].numpy() for h in det.head.heads]).astype(np.float32)


def answer(logits: np.ndarray, heads: Sequence[int]) -> np.ndarray:
    """The probabilities a model of only ``heads`` answers with (:func:`train.model.fuse`)."""
    from train.model import fuse

    return (1.0 / (1.0 + np.exp(-fuse(logits[list(heads)].astype(np.float64))))).astype(np.float32)


def candidates(n: int) -> list[tuple[int, ...]]:
    """All heads first, then each head alone, then all but one (for two or three heads that is
    every subset; with more it keeps the multiple-comparison penalty small)."""
    everything = tuple(range(n))
    out = [everything] + [(k,) for k in range(n)]
    out += [tuple(j for j in everything if j != k) for k in range(n)] if n > 2 else []
    return list(dict.fromkeys(out))


def choose(
    det,
    source: Source,
    takes: Takes,
    xc,
    streams_cfg,
    basis: Callable[[dict], tuple],
) -> HeadChoice:
    """Score the calibration streams and the takes with every head, and decide (module doc)."""
    from export.calibrate import _rule, lowest_threshold

    n = len(det.head.heads)
    everything = tuple(range(n))
    base = HeadChoice(n, everything, "", len(takes.clips), takes.origins, takes.shared_speakers)
    if n < 2:
        return dataclasses.replace(base, reason="the model has one head")
    if len(takes.clips) < xc.choice_min_takes:
        return dataclasses.replace(
            base,
            reason=f"{len(takes.clips)} real takes that never trained (want >= {xc.choice_min_takes}: "
            "`make record KIND=check`, or [export] keyword_dirs)",
        )
    frame_s = det.params.output_hop_s
    negatives: dict[str, list[tuple[ScoredStream, np.ndarray]]] = {}
    for stream in source():
        if not stream.positive:
            negatives.setdefault(stream.group, []).append(_scored(det, stream, frame_s))
    if not negatives:
        raise CalibrationDataError("the calibration source produced no negative streams")
    chosen_on = basis({g: [s for s, _ in ss] for g, ss in negatives.items()}) or tuple(negatives)
    negs = [item for g in chosen_on for item in negatives[g]]
    pos = [_scored(det, s, frame_s) for s in take_streams(takes, det.params, streams_cfg, xc.calibration_seed)]
    cal = xc.calibration()
    rows: list[Candidate] = []
    for subset in candidates(n):
        neg_streams = [dataclasses.replace(s, probs=answer(lg, subset)) for s, lg in negs]
        threshold, met = lowest_threshold(neg_streams, cal, cal.target_fa_per_hour)
        rule = _rule(cal, threshold)
        heard = np.array(
            [
                evaluate([dataclasses.replace(s, probs=answer(lg, subset))], rule, cal.tolerance_s).hits > 0
                for s, lg in pos
            ]
        )
        rows.append(Candidate(subset, threshold, met, heard))
        log.info(
            "heads %s: threshold %.4f, missed %d of %d real take copies", subset, threshold, rows[-1].missed, heard.size
        )

    def robustness(best: Candidate) -> float:
        everyone, subset = (grid_outcomes(negs, pos, c.heads, cal) for c in (rows[0], best))
        rng = np.random.default_rng(xc.calibration_seed)
        return bootstrap_wins(everyone, subset, cal.target_fa_per_hour, xc.choice_draws, rng)

    return decide(base, rows, xc, robustness)


BOOTSTRAP_GRID = 1.0 / (1.0 + np.exp(-np.arange(0.0, 12.0, 0.05)))
"""Thresholds the bootstrap re-chooses among: 0.5 .. 0.999994, 0.05 apart in logit space."""


def grid_outcomes(negs, pos, heads: tuple[int, ...], cal) -> SweepOutcomes:
    """One subset of the heads on :data:`BOOTSTRAP_GRID`: each negative stream's false accepts,
    and whether each take copy was heard (every take clean, then every take over noise)."""
    from export.calibrate import _rule

    def outcomes(scored: ScoredStream, logits: np.ndarray) -> list:
        s = dataclasses.replace(scored, probs=answer(logits, heads))
        return [evaluate([s], _rule(cal, t), cal.tolerance_s) for t in BOOTSTRAP_GRID]

    neg = [outcomes(s, p) for s, p in negs]
    return SweepOutcomes(
        np.array([[o.false_accepts for o in row] for row in neg], int).reshape(len(neg), -1),
        np.array([row[0].negative_hours for row in neg]),
        np.array([[o.hits > 0 for o in outcomes(s, p)] for s, p in pos], bool).reshape(len(pos), -1),
    )


def bootstrap_wins(
    everyone: SweepOutcomes, subset: SweepOutcomes, target: float, draws: int, rng: np.random.Generator
) -> float:
    """Share of ``draws`` resamples in which ``subset`` misses fewer take copies than ``everyone``:
    negative streams and takes (both copies of a take together) drawn with replacement, and each
    side's threshold re-chosen on the drawn negatives (:meth:`SweepOutcomes.miss`)."""
    n_streams, n_takes = len(everyone.hours), everyone.heard.shape[0] // len(TAKE_GROUPS)
    if draws < 1 or n_streams == 0 or n_takes == 0:
        return 1.0
    wins = 0
    for _ in range(draws):
        streams = resample_weights(n_streams, rng)
        copies = np.tile(resample_weights(n_takes, rng), len(TAKE_GROUPS))
        wins += subset.miss(target, streams, copies) < everyone.miss(target, streams, copies)
    return wins / draws


def decide(
    base: HeadChoice, rows: list[Candidate], xc, robustness: Callable[[Candidate], float] | None = None
) -> HeadChoice:
    """The rule (module doc) over the scored candidates, all heads first. ``robustness(best)``:
    the share of bootstrap draws the best subset wins (:func:`bootstrap_wins`); asked only when
    the margin and the sign test hold (None: not asked)."""
    n = base.heads
    out = dataclasses.replace(base, candidates=[r.to_dict() for r in rows])
    everyone = rows[0]
    contenders = [r for r in rows[1:] if r.target_met]
    if not contenders:
        return dataclasses.replace(out, reason="no subset of the heads meets the target false accepts per hour")
    best = min(contenders, key=lambda r: (r.missed, -len(r.heads)))
    diff = best.per_take() - everyone.per_take()
    better, worse = int((diff > 0).sum()), int((diff < 0).sum())
    p = min(1.0, sign_test_p(better, worse) * (len(rows) - 1))
    gain = everyone.miss_rate - best.miss_rate
    heads = list(best.heads)
    out.sign_test = {"heads": heads, "better": better, "worse": worse, "p_bonferroni": p, "gain": gain}
    clear = gain >= xc.choice_margin and p <= xc.choice_alpha
    won = robustness(best) if clear and robustness is not None else None
    if won is not None:
        out.bootstrap = {"heads": heads, "draws": xc.choice_draws, "won": won}
    if clear and (won is None or won >= xc.choice_confidence):
        return dataclasses.replace(
            out,
            kept=best.heads,
            reason=f"heads {heads} missed {100 * gain:.1f} points fewer real takes than all {n} "
            f"(better on {better} takes, worse on {worse}; p = {p:.2g}"
            + ("" if won is None else f"; fewer in {100 * won:.0f} % of {xc.choice_draws} resamples")
            + ")",
        )
    shaky = (
        ""
        if won is None
        else f", and it missed fewer in only {100 * won:.0f} % of {xc.choice_draws} resamples of the negatives "
        f"and takes (want >= {100 * xc.choice_confidence:g} %)"
    )
    return dataclasses.replace(
        out,
        reason=f"no subset was clearly better: the best other, heads {heads}, missed "
        f"{100 * abs(gain):.1f} points {'fewer' if gain >= 0 else 'more'} take copies "
        f"(want >= {100 * xc.choice_margin:g} fewer) with p = {p:.2g} (want <= {xc.choice_alpha:g}){shaky}",
    )


@dataclass(frozen=True)
class Candidate:
    """One subset of the heads at its own threshold for the calibration target."""

    heads: tuple[int, ...]
    threshold: float
    target_met: bool
    heard: np.ndarray = field(repr=False)
    """bool per take copy: every take clean, then every take over noise."""

    @property
    def missed(self) -> int:
        return int(self.heard.size - self.heard.sum())

    @property
    def miss_rate(self) -> float:
        return self.missed / self.heard.size

    def per_take(self) -> np.ndarray:
        """Copies heard per take, 0..2."""
        return self.heard.reshape(len(TAKE_GROUPS), -1).sum(0)

    def to_dict(self) -> dict:
        return {
            "heads": list(self.heads),
            "threshold": self.threshold,
            "target_met": self.target_met,
            "missed": self.missed,
            "miss_rate": self.miss_rate,
        }


def _scored(det, stream: Stream, frame_s: float) -> tuple[ScoredStream, np.ndarray]:
    """``stream`` scored by all heads together (what the calibration basis reads: its length), and
    each head's logits ``[heads, frames]`` (what each candidate is scored with)."""
    logits = head_logits(det, stream.audio)
    everyone = answer(logits, range(len(logits)))
    return ScoredStream(everyone, frame_s, list(stream.keyword_spans), stream.name, list(stream.ignore_spans)), logits


def sign_test_p(better: int, worse: int) -> float:
    """One-sided sign test: P(at least ``better`` of ``better + worse`` fair coin flips come up heads)."""
    n = better + worse
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(better, n + 1)) / 2**n


def cut(ckpt, kept: Sequence[int]):
    """The checkpoint with only the ``kept`` heads (renumbered in order; one head is a plain
    :class:`train.model.Head`, whose weights carry no ``members.`` prefix)."""
    kept = list(kept)
    state = {}
    for i, k in enumerate(kept):
        prefix = f"members.{k}."
        for key, value in ckpt.state_dict.items():
            if key.startswith(prefix):
                rest = key[len(prefix) :]
                state[rest if len(kept) == 1 else f"members.{i}.{rest}"] = value
    return dataclasses.replace(ckpt, state_dict=state, model_config={**ckpt.model_config, "heads": len(kept)})
