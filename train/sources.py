"""Source utterances: every keyword, confusable and sentence the clips are mixed from.

Layout under ``build/<keyword>/sources/``::

    <kind>/<engine>/<key>.wav   trimmed 16-bit mono WAV at AudioParams.sample_rate
    index.json                  {"entries": [...], "speakers": {speaker: split}, "voices": {voice: split}, ...}

``kind`` is ``keyword``, ``confusable`` or ``speech``; ``engine`` is a TTS engine or
``recording`` (the user's own audio, folders). ``key`` hashes everything that determines the
audio, so a re-run finds finished renders and skips them, and a changed request gets a new
file. The plan (:func:`plan_tts`, :func:`plan_recordings`) is deterministic for a seed and
the voices present; rendering (:func:`render`) runs on all cores.

The benchmark builds its test streams from the ``test`` split's raw utterances:
:func:`list_sources` lists them per split and kind.

Reproducibility: a fresh build renders the same utterances (piper batches are seeded, see
:func:`_chunks`), so clips and labels come out the same; only espeak-ng's breathy variants add
a little unseeded noise to the samples (never to an utterance's length).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from device.fsutil import atomic_write_text
from device.params import AudioParams
from train import tts, workpool
from train.audio_io import AUDIO_KINDS, AudioReadError, duration_s, read_audio, resample, write_wav
from train.dataconfig import DataConfig
from train.voicesplit import BY_RENDER, SPLITS, stable_split

if TYPE_CHECKING:
    from train.label.labels import Label

log = logging.getLogger(__name__)

KINDS = ("keyword", "confusable", "speech")
INDEX_NAME = "index.json"
TRIM_TOP_DB = 40.0
"""Leading/trailing audio quieter than this below the peak is cut (so keyword ends are exact)."""
MIN_UTTERANCE_S = 0.12
MAX_WORD_S = 4.0
"""Longest plausible keyword/confusable render (s); longer means the engine misbehaved."""
KEYWORD_ENDINGS = ("", ".", "!", "?", ",")
NEURAL_ENGINES = ("piper", "kokoro")
"""Engines whose renders cost ~10x the others' (``[data] neural_speech_weight``)."""


class SourceError(ValueError):
    """A source problem the user must fix (one line)."""


class KeywordTooLong(SourceError):
    """A keyword recording that no clip can hold: the user must trim it or lengthen the clips."""


@dataclass(frozen=True)
class Job:
    """One utterance to produce: a TTS request or a recording to import."""

    kind: str
    split: str
    voice: str
    speaker: str
    engine: str
    text: str
    settings: tuple[tuple[str, float], ...] = ()
    origin: str = ""
    """For recordings: the source file."""
    span_s: tuple[float, float] | None = None
    """For recordings: the part of the file to keep (s)."""
    key: str = ""
    context_s: float = 0.0
    """For keyword recordings: audio kept from before the word (s), so the room it was said in
    comes along; the keyword still ends where the utterance ends."""

    @property
    def relpath(self) -> str:
        return f"{self.kind}/{self.engine}/{self.key}.wav"


def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def _make(kind, split, voice: tts.Voice, text, settings, sample_rate) -> Job:
    s = tuple(sorted(settings.items()))
    return Job(kind, split, voice.id, voice.speaker, voice.engine, text, s, key=_key(voice.id, text, s, sample_rate))


# -- planning ---------------------------------------------------------------------------
def split_count(cfg: DataConfig, split: str, train_count: int) -> int:
    if split == "train":
        return train_count
    return max(min(train_count, 8), round(train_count * cfg.heldout_renders_fraction))


def plan_tts(
    cfg: DataConfig,
    params: AudioParams,
    voices: list[tts.Voice],
    speaker_split: dict[str, str],
    texts: dict[str, list[str]],
) -> list[Job]:
    """Render jobs for every split and kind. ``texts[kind]`` lists the texts to speak;
    ``texts["carrier"]`` the phrases a share of keyword renders start with
    (``[data] keyword_context_fraction``)."""
    jobs = []
    for s_i, split in enumerate(SPLITS):
        for k_i, kind in enumerate(KINDS):
            train_n = {
                "keyword": cfg.keyword_renders,
                "confusable": cfg.confusable_renders,
                "speech": cfg.speech_renders,
            }[kind]
            if not texts.get(kind) or train_n == 0:
                continue
            rng = np.random.default_rng([cfg.seed, 11, s_i, k_i])
            jobs += _plan_split(
                cfg,
                params,
                voices,
                speaker_split,
                split,
                kind,
                texts[kind],
                split_count(cfg, split, train_n),
                rng,
                texts.get("carrier", []),
            )
    return jobs


def _plan_split(cfg, params, voices, speaker_split, split, kind, texts, n, rng, carriers=()) -> list[Job]:
    by_engine: dict[str, list[tts.Voice]] = {}
    for v in voices:
        if speaker_split.get(v.speaker) in (split, BY_RENDER):
            by_engine.setdefault(v.engine, []).append(v)
    engines = [
        e for e in cfg.engines if e in by_engine and (kind != "keyword" or e in (cfg.keyword_engines or cfg.engines))
    ]
    if not engines:
        return []
    weights = np.array(
        [
            cfg.engine_weights[cfg.engines.index(e)]
            * (cfg.neural_speech_weight if kind == "speech" and e in NEURAL_ENGINES else 1.0)
            for e in engines
        ],
        dtype=np.float64,
    )
    weights = weights / weights.sum() if weights.sum() > 0 else np.full(len(engines), 1 / len(engines))
    # Cycle through each engine's voices in a shuffled order, so every voice gets used.
    cycles = {e: [by_engine[e][i] for i in rng.permutation(len(by_engine[e]))] for e in engines}
    used = {e: 0 for e in engines}
    order = [texts[i] for i in rng.permutation(len(texts))]
    jobs = []
    for i in range(n):
        engine = engines[int(rng.choice(len(engines), p=weights))]
        voice = cycles[engine][used[engine] % len(cycles[engine])]
        used[engine] += 1
        text = order[i % len(order)]
        if kind == "keyword":
            text += KEYWORD_ENDINGS[int(rng.integers(len(KEYWORD_ENDINGS)))]
            # (drawn only when enabled, so plans without carriers stay as they were)
            if carriers and cfg.keyword_context_fraction > 0 and rng.random() < cfg.keyword_context_fraction:
                text = f"{carriers[int(rng.integers(len(carriers)))]} {text}"
        settings = tts.engine_module(engine).random_settings(voice, rng)
        jobs.append(_make(kind, split, voice, text, settings, params.sample_rate))
    return jobs


USER_SPEAKER = "person:user"
"""Speaker of every utterance imported from the user's own audio (recordings, folders)."""


def is_users(entry: dict) -> bool:
    """Whether an index entry is the user's own audio (what ``[data] recording_share`` favours)."""
    return entry.get("engine") == "recording" and entry.get("speaker") == USER_SPEAKER


@dataclass
class RecordingPlan:
    jobs: list[Job] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    origins: dict[str, int] = field(default_factory=dict)
    """How many utterances came from each origin (positive/, negative/, field labels, folders...)."""


def plan_recordings(
    cfg: DataConfig, keyword: str, params: AudioParams, shared_negatives: Iterable[Path] = ()
) -> RecordingPlan:
    """Import jobs for the user's recordings, extra folders and (if enabled) shared negatives."""
    plan = RecordingPlan()
    root = Path(cfg.recordings_dir) / keyword
    groups: list[tuple[str, str, Iterable[Path]]] = [
        ("keyword", "recordings/positive", _audio_in(root / "positive")),
        ("confusable", "recordings/negative", _audio_in(root / "negative")),
    ]
    for d in cfg.positive_dirs:
        groups.append(("keyword", f"folder:{d}", _required_audio(d)))
    for d in cfg.negative_dirs:
        groups.append(("confusable", f"folder:{d}", _required_audio(d)))
    for kind, origin, files in groups:
        for path in files:
            labelled, spans = _label_of(path, "unlabeled")
            if labelled == "negative":  # relabelled by the user: not a keyword after all
                kind_here, spans = "confusable", ()
            else:
                kind_here = kind
                spans = spans if kind == "keyword" and labelled == "keyword" else ()
            for span in _or_whole_file(spans):
                _add_import(plan, cfg, params, kind_here, origin, path, span, speaker=USER_SPEAKER)
    for path in _audio_in(root / "field"):
        kind, spans = _label_of(path, "unlabeled")
        if kind == "true_accept":
            for span in _or_whole_file(spans):
                _add_import(
                    plan, cfg, params, "keyword", "recordings/field:true_accept", path, span, speaker=USER_SPEAKER
                )
        elif kind == "false_accept":
            _add_import(
                plan, cfg, params, "confusable", "recordings/field:false_accept", path, None, speaker=USER_SPEAKER
            )
    for path in _audio_in(root / "snippets"):  # the room's own sound, kept by the daemon ([snippets])
        kind, spans = _label_of(path, "negative")  # an unreviewed snippet is the room's sound
        if kind in ("keyword", "true_accept"):  # a reviewer heard the keyword in it
            for span in _or_whole_file(spans):
                _add_import(
                    plan, cfg, params, "keyword", "recordings/snippets:keyword", path, span, speaker=USER_SPEAKER
                )
        elif kind in ("negative", "false_accept"):
            _add_import(plan, cfg, params, "confusable", "recordings/snippets", path, None, speaker=USER_SPEAKER)
    for d in cfg.speech_dirs:
        for path in _required_audio(d):
            _add_pieces(plan, cfg, params, f"speech-folder:{d}", path, speaker=f"folder:{d}")
    for path in shared_negatives:
        _add_pieces(plan, cfg, params, "shared/negatives", Path(path), speaker="shared", split="train")
    return plan


def _add_pieces(plan, cfg, params, origin: str, path: Path, speaker: str, split: str | None = None) -> None:
    """General negative audio of any length (a podcast, an hour of TV, one sentence), imported
    as utterance-sized pieces of ``speech_piece_min_s``..``speech_piece_max_s`` (cut points drawn
    from a hash of the file, so the same file always gives the same pieces)."""
    length_s = _length_or_skip(plan, path)
    if length_s is None:
        return
    if length_s <= cfg.speech_piece_max_s:
        _add_import(plan, cfg, params, "speech", origin, path, None, speaker=speaker, split=split)
        return
    seed = int(_key(str(path.resolve()), "pieces"), 16) % 2**63
    rng = np.random.default_rng(seed)
    start = 0.0
    while length_s - start >= cfg.speech_piece_min_s:
        piece = float(rng.uniform(cfg.speech_piece_min_s, cfg.speech_piece_max_s))
        end = min(length_s, start + piece)
        _add_import(
            plan, cfg, params, "speech", origin, path, (round(start, 3), round(end, 3)), speaker=speaker, split=split
        )
        start = end


def _audio_in(folder: Path) -> list[Path]:
    from train.audio_io import list_audio_files

    return list_audio_files(folder) if folder.is_dir() else []


def _required_audio(folder: str) -> list[Path]:
    files = _audio_in(Path(folder))
    if not files:
        raise SourceError(f"folder {folder} holds no {AUDIO_KINDS} files")
    return files


def user_label(path: Path) -> Label | None:
    """The label beside ``path`` (a :class:`train.label.labels.Label`), or None when there is none
    or it is bad: a bad one is reported and the clip counts as unlabelled."""
    from train.label.labels import LabelError, load_label

    try:
        return load_label(path)
    except LabelError as exc:
        log.warning("ignoring bad label beside %s (%s); the clip counts as unlabelled", path, exc)
        return None


def _length_or_skip(plan: RecordingPlan, path: Path) -> float | None:
    """The file's duration (s); None, with the reason logged and counted, when it cannot be read."""
    try:
        return duration_s(path)
    except (OSError, AudioReadError) as exc:
        msg = str(exc) if isinstance(exc, AudioReadError) else f"cannot read audio file {path}: {exc}"
        log.warning("skipping %s", msg)
        plan.unreadable.append(msg)
        return None


def recording_split(path: Path, cfg) -> str:
    """The split a user's audio file belongs to (by a hash of its path): every piece of it in one
    split, so its ``val`` files never trained (export calibrates on them; see ``export.pipeline``)."""
    return stable_split(str(Path(path).resolve()), cfg.seed, cfg.recording_val_fraction)


def _label_of(path: Path, unlabelled: str) -> tuple[str, tuple[tuple[float, float], ...]]:
    """The kind and keyword spans of the label beside ``path``; ``(unlabelled, ())`` without a usable one."""
    label = user_label(path)
    return (label.kind, label.keyword_spans) if label is not None else (unlabelled, ())


def _or_whole_file(spans: Iterable[tuple[float, float]]) -> list[tuple[float, float] | None]:
    """The spans to import one by one, or ``[None]`` (the whole file) when there are none."""
    each: list[tuple[float, float] | None] = list(spans)
    return each or [None]


def _add_import(plan, cfg, params, kind, origin, path: Path, span, speaker, split=None) -> None:
    context = cfg.recording_context_s if kind == "keyword" else 0.0
    length_s = _length_or_skip(plan, path)
    if length_s is None:
        return
    stat = path.stat()
    split = split or recording_split(path, cfg)
    key = _key(
        str(path.resolve()), stat.st_size, stat.st_mtime_ns, span, params.sample_rate, *([context] if context else [])
    )
    plan.jobs.append(
        Job(
            kind,
            split,
            f"recording:{origin}",
            speaker,
            "recording",
            path.stem,
            origin=str(path),
            span_s=span,
            key=key,
            context_s=context,
        )
    )
    plan.origins[origin] = plan.origins.get(origin, 0) + 1
    if kind == "keyword" and span is None and length_s > 30:
        log.warning("%s is %.0f s long for a keyword take; only its loudest part is kept", path, length_s)


# -- rendering --------------------------------------------------------------------------
@dataclass
class RenderContext:
    params: AudioParams
    sources_dir: str
    max_keyword_s: float
    max_speech_s: float


_CTX: RenderContext | None = None


def _init(ctx: RenderContext) -> None:
    global _CTX
    _CTX = ctx


def _render_chunk(chunk: tuple[list[Job], int]) -> list[tuple[Job, str | None, bool]]:
    """Worker: produce each job's WAV. -> (job, error or None, whether the error is fatal)."""
    jobs, seed = chunk
    ctx = _CTX
    assert ctx is not None
    out: list[tuple[Job, str | None, bool]] = []
    tts_jobs = [j for j in jobs if j.engine != "recording"]
    results = tts.synthesize([tts.Request(_voice(j), j.text, j.settings) for j in tts_jobs], seed=seed)
    raw = dict(zip([j.key for j in tts_jobs], results))
    for job in jobs:
        try:
            if job.engine == "recording":
                audio = _read_recording(job, ctx.params)
            else:
                res = raw[job.key]
                if isinstance(res, str):
                    raise SourceError(res)
                audio = resample(res.audio, res.sample_rate, ctx.params.sample_rate)
            audio = finish(audio, job, ctx)
            write_wav(Path(ctx.sources_dir) / job.relpath, audio, ctx.params.sample_rate)
            out.append((job, None, False))
        except (SourceError, AudioReadError) as exc:
            out.append((job, str(exc), isinstance(exc, KeywordTooLong)))
    return out


def _voice(job: Job) -> tts.Voice:
    return tts.Voice(job.engine, job.voice.split(":", 1)[1], job.speaker)


def _read_recording(job: Job, params: AudioParams) -> np.ndarray:
    if job.span_s is None:
        return read_audio(job.origin, params)
    start, end = job.span_s
    start_s = max(0.0, start - job.context_s)
    return read_audio(job.origin, params, start_s=start_s, duration_s=end - start_s)


def finish(audio: np.ndarray, job: Job, ctx: RenderContext) -> np.ndarray:
    """Trim silence, check the result is plausible speech, normalise its peak to -1 dBFS."""
    audio = np.asarray(audio, dtype=np.float32)
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if not np.isfinite(peak) or peak < 1e-3:
        raise SourceError(f"{job.voice} {job.text!r}: silent output")
    if job.span_s is None:  # labelled spans are already cut to the word (and its context)
        audio = trim(audio, TRIM_TOP_DB, keep_before=round(job.context_s * ctx.params.sample_rate))
    seconds = len(audio) / ctx.params.sample_rate
    limit = (
        ctx.max_speech_s
        if job.kind == "speech"
        else (ctx.max_keyword_s if job.engine == "recording" else min(MAX_WORD_S, ctx.max_keyword_s))
    )
    if job.kind == "keyword" and job.engine == "recording" and seconds > limit:
        raise KeywordTooLong(
            f"keyword recording {job.origin} is {seconds:.1f} s after trimming; "
            f"a clip ({limit:.1f} s before the label window) cannot hold it"
        )
    if seconds < MIN_UTTERANCE_S or seconds > limit:
        raise SourceError(f"{job.voice} {job.text!r}: implausible length {seconds:.2f} s")
    return audio * np.float32(0.89 / float(np.max(np.abs(audio))))


def trim(audio: np.ndarray, top_db: float, frame: int = 128, keep_before: int = 0) -> np.ndarray:
    """Cut leading and trailing frames whose RMS is more than ``top_db`` below the loudest frame,
    keeping up to ``keep_before`` samples before the first loud one."""
    n = len(audio) // frame
    if n == 0:
        return audio
    rms_db = 10 * np.log10(np.mean(audio[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(rms_db > rms_db.max() - top_db)
    return audio[max(0, loud[0] * frame - keep_before) : min(len(audio), (loud[-1] + 1) * frame)]


def render(jobs: list[Job], ctx: RenderContext, workers: int) -> dict:
    """Produce every job's WAV that is not there yet. Returns counts and the failures.

    Raises :class:`KeywordTooLong` (after the rest is done) when a keyword recording cannot fit a clip.
    """
    root = Path(ctx.sources_dir)
    chunks = _chunks(jobs, lambda j: not (root / j.relpath).exists())
    todo = sum(len(c[0]) for c in chunks)
    rendered = 0
    failed: list[str] = []
    fatal: list[str] = []
    log.info("sources: %d utterances planned, %d already rendered", len(jobs), len(jobs) - todo)
    if todo:
        for results in workpool.imap(
            _render_chunk,
            chunks,
            workers,
            desc="rendering sources",
            total=todo,
            unit="utt",
            init=_init,
            init_args=(ctx,),
            weight=len,
        ):
            for _job, err, is_fatal in results:
                if err is None:
                    rendered += 1
                else:
                    (fatal if is_fatal else failed).append(err)
    for err in failed:
        log.warning("render failed: %s", err)
    if fatal:
        more = f" (and {len(fatal) - 1} more)" if len(fatal) > 1 else ""
        raise KeywordTooLong(fatal[0] + more)
    return {"planned": len(jobs), "cached": len(jobs) - todo, "rendered": rendered, "failed": failed}


def _chunks(jobs: list[Job], missing) -> list[tuple[list[Job], int]]:
    """Batches of one engine each, with a seed, for the jobs whose WAV is ``missing``.

    Batches are cut from the whole plan, not from what is missing, and a batch with anything
    missing is rendered whole: a seeded engine (piper) then makes the same audio whether the
    build ran in one go or was resumed. Festival amortises its start-up over a batch.
    """
    size = {"festival": 24, "piper": 16, "recording": 16, "flite": 16}
    by_engine: dict[str, list[Job]] = {}
    for j in jobs:
        by_engine.setdefault(j.engine, []).append(j)
    chunks = []
    for engine, js in by_engine.items():
        n = size.get(engine, 64)
        for i in range(0, len(js), n):
            batch = js[i : i + n]
            if engine != "piper":
                batch = [j for j in batch if missing(j)]
            if any(missing(j) for j in batch):
                chunks.append((batch, int(batch[0].key[:8], 16)))
    # Slow engines first, so the last chunks to finish are short ones.
    order = {"piper": 0, "festival": 1}
    return sorted(chunks, key=lambda c: order.get(c[0][0].engine, 2))


# -- index ------------------------------------------------------------------------------
def write_index(jobs: list[Job], sources_dir: str | Path, speaker_split: dict[str, str], extra: dict) -> dict:
    """Write ``index.json`` for the jobs whose WAV exists; return it."""
    root = Path(sources_dir)
    try:  # durations of files already indexed (reading 8000 WAV headers again costs seconds)
        known = {e["path"]: e["duration_s"] for e in load_index(root)["entries"]}
    except (SourceError, json.JSONDecodeError, KeyError, TypeError):
        known = {}
    entries = []
    voices: dict[str, str] = {}  # voice -> its split ("all" when its speaker is split by render)
    for j in jobs:
        path = root / j.relpath
        if path.exists():
            entries.append(
                {
                    "path": j.relpath,
                    "kind": j.kind,
                    "split": j.split,
                    "text": j.text,
                    "voice": j.voice,
                    "speaker": j.speaker,
                    "engine": j.engine,
                    "settings": dict(j.settings),
                    "origin": j.origin,
                    "duration_s": known.get(j.relpath) or round(duration_s(path), 4),
                }
            )
            voices[j.voice] = "all" if speaker_split.get(j.speaker) == BY_RENDER else j.split
    index = {"version": 1, "entries": entries, "speakers": speaker_split, "voices": voices, **extra}
    atomic_write_text(root / INDEX_NAME, json.dumps(index, indent=1, sort_keys=True) + "\n")
    return index


@dataclass(frozen=True)
class SourceClip:
    path: Path
    kind: str
    split: str
    text: str
    voice: str
    speaker: str
    engine: str
    duration_s: float
    settings: dict = field(default_factory=dict, compare=False)


def load_index(sources_dir: str | Path) -> dict:
    path = Path(sources_dir) / INDEX_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SourceError(f"no source index at {path}: run `make data` first") from None


def list_sources(build_dir: str | Path, split: str | None = None, kind: str | None = None) -> list[SourceClip]:
    """Rendered source utterances of ``build/<keyword>`` for one split and/or kind.

    ``kind``: ``keyword`` | ``confusable`` | ``speech``; ``split``: ``train`` | ``val`` | ``test``.
    """
    root = Path(build_dir) / "sources"
    out = []
    for e in load_index(root)["entries"]:
        if (split is None or e["split"] == split) and (kind is None or e["kind"] == kind):
            out.append(
                SourceClip(
                    root / e["path"],
                    e["kind"],
                    e["split"],
                    e["text"],
                    e["voice"],
                    e["speaker"],
                    e["engine"],
                    e["duration_s"],
                    e.get("settings", {}),
                )
            )
    return out
