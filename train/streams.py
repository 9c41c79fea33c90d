"""Evaluation streams: long, labelled audio built deterministically from short clips.

A wake-word detector is judged on continuous audio (did it fire once per keyword, how often
did it fire otherwise), so validation, threshold calibration and the benchmark all score
*streams*, built here the same way for all three:

- :func:`positive_streams`: keyword clips placed one after another, each after a random
  lead-in (``lead_in_min_s``..``lead_in_max_s``) and followed by ``tail_s`` of background, so
  every keyword has its own detection window and the refractory period never merges two;
- :func:`negative_streams`: non-keyword speech clips concatenated with short random gaps
  into streams of about ``negative_stream_s`` seconds;
- either one clean (``snr_db=None``: silence between clips) or over a bed of recorded noise
  whose level is set per clip so that clip's speech sits ``snr_db`` above it.

Everything is a pure function of (clips, noise, params, config, seed): the same inputs give
the same streams, bit for bit. :func:`cached` stores a built set under a hash of its inputs,
so a second build (the next training run, export, the benchmark) just loads it.

:class:`Stream` is also what export's calibration sources yield (``export.calib_streams``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from device.fsutil import atomic_path
from device.params import AudioParams
from device.speech import find_speech

log = logging.getLogger(__name__)

CACHE_VERSION = 2
"""Bumped when the way streams are built changes, so stale caches are not reused.
2: positive streams set each keyword take apart (``Stream.ignore_spans``)."""


@dataclass(frozen=True)
class StreamConfig:
    lead_in_min_s: float = 0.5
    """Shortest background before each keyword clip (s)."""
    lead_in_max_s: float = 1.5
    """Longest background before each keyword clip (s); drawn uniformly in between."""
    tail_s: float = 1.0
    """Background after each keyword clip (s). Lead-in + clip + tail should exceed the decision's
    refractory period (2 s), so one keyword's detection never blocks the next one's."""
    keywords_per_stream: int = 12
    """Keyword clips per positive stream (the last stream holds the remainder)."""
    negative_stream_s: float = 120.0
    """Target length of each negative stream (s)."""
    gap_min_s: float = 0.05
    """Shortest pause between two negative clips (s)."""
    gap_max_s: float = 0.3
    """Longest pause between two negative clips (s)."""
    snr_db: float = 10.0
    """Speech-to-noise ratio of the noisy condition (dB), per clip (speech power over the
    spoken part vs. noise power)."""
    seed: int = 20261124
    """Seed of every random choice (lead-ins, gaps, noise excerpts)."""

    def __post_init__(self) -> None:
        if not 0 <= self.lead_in_min_s <= self.lead_in_max_s:
            raise ValueError("need 0 <= lead_in_min_s <= lead_in_max_s")
        if not 0 <= self.gap_min_s <= self.gap_max_s:
            raise ValueError("need 0 <= gap_min_s <= gap_max_s")
        if self.tail_s < 0 or self.keywords_per_stream < 1 or self.negative_stream_s <= 0:
            raise ValueError("tail_s >= 0, keywords_per_stream >= 1 and negative_stream_s > 0 required")


@dataclass(frozen=True)
class Clip:
    """One source clip: float32 mono audio at the params' rate, and where the keyword is in it."""

    audio: np.ndarray
    """float32 ``[samples]`` in [-1, 1]."""
    span_s: tuple[float, float] | None = None
    """``(start_s, end_s)`` of the spoken keyword in the clip; None for non-keyword speech."""
    name: str = ""
    speaker: str = ""
    """Who speaks in it, where known (``train.realdata`` names every real speaker; "" otherwise)."""


@dataclass
class Stream:
    audio: np.ndarray
    """float32 ``[samples]`` mono at the params' sample rate."""
    keyword_spans: list[tuple[float, float]] = field(default_factory=list)
    """``(start_s, end_s)`` of each keyword in the stream; empty for negative streams."""
    group: str = ""
    """Which evaluation set it belongs to, e.g. ``"real_clean"``."""
    name: str = ""
    ignore_spans: list[tuple[float, float]] = field(default_factory=list)
    """Stretches where a detection is neither a hit nor a false accept: the whole of each keyword
    take in a positive stream. A real take says more than its keyword (a sentence that ends in
    it, a false start) and its span is marked by hand, so a detection elsewhere in the take is
    no evidence either way; false accepts are counted on negative speech and background."""
    speakers: list[str] = field(default_factory=list)
    """Who said each keyword of ``keyword_spans`` (its clip's ``speaker``; "" where unknown): the
    benchmark's intervals draw speakers, not takes, since one speaker's takes miss together."""

    @property
    def positive(self) -> bool:
        return bool(self.keyword_spans)

    def keyword_speakers(self) -> list[str]:
        """One speaker per keyword span ("" where the stream does not say)."""
        said = list(self.speakers)
        if said and len(said) != len(self.keyword_spans):
            raise ValueError(f"stream {self.name!r}: {len(said)} speakers for {len(self.keyword_spans)} keywords")
        return said or [""] * len(self.keyword_spans)

    def duration_s(self, sample_rate: int) -> float:
        return len(self.audio) / sample_rate


def speech_span_s(audio: np.ndarray, params: AudioParams) -> tuple[float, float]:
    """Where the speech is in a clip (s), by energy against its own noise floor; the whole
    clip when nothing stands out."""
    span = find_speech(np.asarray(audio, np.float32), params.sample_rate)
    if span is None:
        return 0.0, len(audio) / params.sample_rate
    return span.seconds(params.sample_rate)


def speech_power(audio: np.ndarray, span_s: tuple[float, float] | None, sample_rate: int) -> float:
    """Mean power of the spoken part of a clip (the whole clip if no span)."""
    a, b = (0, len(audio)) if span_s is None else (int(span_s[0] * sample_rate), int(span_s[1] * sample_rate))
    part = np.asarray(audio[a:b] if b > a else audio, np.float64)
    return float(np.mean(part * part)) if len(part) else 0.0


def positive_streams(
    clips: Sequence[Clip],
    params: AudioParams,
    cfg: StreamConfig,
    noise: Sequence[np.ndarray] = (),
    snr_db: float | None = None,
    seed: int | None = None,
    group: str = "",
) -> list[Stream]:
    """Keyword clips (each with ``span_s``) laid out in streams of ``keywords_per_stream``."""
    rng = np.random.default_rng(cfg.seed if seed is None else seed)
    sr = params.sample_rate
    streams = []
    for first in range(0, len(clips), cfg.keywords_per_stream):
        pieces, spans, powers, takes, speakers = [], [], [], [], []
        offset = 0
        for clip in clips[first : first + cfg.keywords_per_stream]:
            if clip.span_s is None:
                raise ValueError(f"positive clip {clip.name!r} has no keyword span")
            lead = _silence(rng.uniform(cfg.lead_in_min_s, cfg.lead_in_max_s), sr)
            tail = _silence(cfg.tail_s, sr)
            start = offset + len(lead)
            spans.append((start / sr + clip.span_s[0], start / sr + clip.span_s[1]))
            takes.append((start / sr, (start + len(clip.audio)) / sr))
            speakers.append(clip.speaker)
            pieces += [lead, clip.audio.astype(np.float32), tail]
            powers.append((start, start + len(clip.audio), speech_power(clip.audio, clip.span_s, sr)))
            offset += len(lead) + len(clip.audio) + len(tail)
        audio = _add_noise(np.concatenate(pieces), powers, noise, snr_db, rng, sr)
        name = f"{group}/pos{first // cfg.keywords_per_stream:03d}"
        streams.append(Stream(audio, spans, group, name, takes, speakers))
    return streams


def negative_streams(
    clips: Sequence[Clip],
    params: AudioParams,
    cfg: StreamConfig,
    noise: Sequence[np.ndarray] = (),
    snr_db: float | None = None,
    seed: int | None = None,
    group: str = "",
) -> list[Stream]:
    """Non-keyword clips concatenated (random short gaps) into streams of ~``negative_stream_s``."""
    rng = np.random.default_rng(cfg.seed + 1 if seed is None else seed)
    sr = params.sample_rate
    target = int(cfg.negative_stream_s * sr)
    streams: list[Stream] = []
    pieces: list[np.ndarray] = []
    powers: list[tuple[int, int, float]] = []
    offset = 0

    def flush() -> None:
        nonlocal pieces, powers, offset
        if pieces:
            audio = _add_noise(np.concatenate(pieces), powers, noise, snr_db, rng, sr)
            streams.append(Stream(audio, [], group, f"{group}/neg{len(streams):03d}"))
        pieces, powers, offset = [], [], 0

    for clip in clips:
        gap = _silence(rng.uniform(cfg.gap_min_s, cfg.gap_max_s), sr)
        start = offset + len(gap)
        pieces += [gap, clip.audio.astype(np.float32)]
        powers.append((start, start + len(clip.audio), speech_power(clip.audio, clip.span_s, sr)))
        offset = start + len(clip.audio)
        if offset >= target:
            flush()
    flush()
    return streams


def _silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(int(round(seconds * sample_rate)), np.float32)


def noise_bed(noise: Sequence[np.ndarray], n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """``n_samples`` of background: random excerpts of random noise recordings, each scaled to
    unit RMS, joined end to end. float32 ``[n_samples]``."""
    usable = [np.asarray(x, np.float32) for x in noise if len(x) and np.any(x)]
    if not usable:
        raise ValueError("no usable noise recordings (all empty or silent)")
    out = np.empty(n_samples, np.float32)
    filled = 0
    while filled < n_samples:
        x = usable[rng.integers(len(usable))]
        start = int(rng.integers(len(x)))
        piece = x[start : start + n_samples - filled]
        rms = float(np.sqrt(np.mean(piece.astype(np.float64) ** 2)))
        if rms < 1e-8:  # a silent stretch of an otherwise usable recording: draw again
            continue
        out[filled : filled + len(piece)] = piece / rms
        filled += len(piece)
    return out


def _add_noise(
    audio: np.ndarray,
    powers: list[tuple[int, int, float]],
    noise: Sequence[np.ndarray],
    snr_db: float | None,
    rng: np.random.Generator,
    sample_rate: int,
) -> np.ndarray:
    """Mix a noise bed under ``audio`` so each clip ``(start, end, speech power)`` sits ``snr_db``
    above it. The noise gain steps between clips (midway through the silence that separates
    them) with a 50 ms ramp, so no clip hears another clip's level."""
    if snr_db is None:
        return audio
    if not noise:
        raise ValueError("a noisy condition needs noise recordings")
    gains = np.empty(len(audio), np.float64)
    bounds = [0] + [(powers[i][1] + powers[i + 1][0]) // 2 for i in range(len(powers) - 1)] + [len(audio)]
    for i, (_, _, power) in enumerate(powers):
        gains[bounds[i] : bounds[i + 1]] = np.sqrt(power / 10 ** (snr_db / 10))
    ramp = max(1, int(0.05 * sample_rate))
    kernel = np.ones(ramp) / ramp
    gains = np.convolve(np.pad(gains, (ramp // 2, ramp - 1 - ramp // 2), mode="edge"), kernel, mode="valid")
    mixed = audio + (noise_bed(noise, len(audio), rng) * gains).astype(np.float32)
    peak = float(np.max(np.abs(mixed))) if len(mixed) else 0.0
    return mixed / peak if peak > 1.0 else mixed


# -- caching ---------------------------------------------------------------------------


def cache_key(**inputs) -> str:
    """Stable short hash of JSON-able inputs (file fingerprints, params, config, seed, ...)."""
    blob = json.dumps({"version": CACHE_VERSION, **inputs}, sort_keys=True, default=_jsonable)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _jsonable(obj):
    if hasattr(obj, "__dataclass_fields__"):
        return asdict(obj)
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot hash {type(obj).__name__} into a cache key")


def file_fingerprint(paths: Sequence[str | Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of each file: enough to notice a changed source."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return out


CACHE_KEEP = 3
"""Cache files kept per name in one folder (the most recently used): a real set is hundreds of
MB, and every other exclusion of speakers or stream setting keys a new one."""


def touch_cache(path: Path) -> None:
    """Mark a cache file as just used (its modification time), so :func:`prune_cache` keeps it."""
    try:
        path.touch(exist_ok=True)
    except OSError:
        pass  # a read-only cache still serves; it just ages


def least_recently_used(paths: Iterable[Path], keep: int) -> list[Path]:
    """All of ``paths`` but the ``keep`` most recently used (modification time: :func:`touch_cache`);
    a path that cannot be read is left out."""
    used = []
    for path in paths:
        try:
            used.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    used.sort(reverse=True)
    return [path for _, path in used[max(keep, 0) :]]


def discard_cache_file(path: Path) -> None:
    """Delete an old cache file; one that cannot be deleted is a warning, never an error."""
    try:
        path.unlink()
    except OSError as exc:
        log.warning("could not remove the older cache %s (%s)", path, exc)


def prune_cache(path: Path, name: str, keep: int = CACHE_KEEP) -> None:
    """Delete all but the ``keep`` most recently used ``<name>-<hex key>.npz`` beside ``path``
    (which is one of them and is kept). Other names, and files not of that form, are left alone."""
    pattern = re.compile(re.escape(name) + r"-[0-9a-f]{8,64}\.npz")
    siblings = (
        other
        for other in path.parent.iterdir()
        if other != path and pattern.fullmatch(other.name) and other.is_file() and not other.is_symlink()
    )
    for old in least_recently_used(siblings, keep - 1):
        discard_cache_file(old)
        log.info("removed the older cache %s (%d kept per name)", old.name, keep)


def cached(cache_dir: str | Path | None, name: str, key: str, build: Callable[[], list[Stream]]) -> list[Stream]:
    """``build()``'s streams, stored as ``<cache_dir>/<name>-<key>.npz`` (atomically) and loaded
    from there next time. ``cache_dir=None`` disables caching. Of the files of one ``name``, the
    :data:`CACHE_KEEP` most recently used stay (:func:`prune_cache`)."""
    if cache_dir is None:
        return build()
    path = Path(cache_dir) / f"{name}-{key}.npz"
    if path.is_file():
        try:
            streams = load_streams(path)
            touch_cache(path)
            return streams
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring unreadable stream cache %s (%s); rebuilding", path, exc)
    streams = build()
    save_streams(path, streams)
    prune_cache(path, name)
    # What every later run loads (16-bit audio), so this run's figures and the embedding cache
    # keyed by the audio are the same as theirs (the float32 original used to key its own copy).
    return load_streams(path)


def save_streams(path: str | Path, streams: list[Stream]) -> None:
    """Streams -> one ``.npz`` (audio as 16-bit PCM, spans, groups, names, speakers), atomically."""
    lengths = np.array([len(s.audio) for s in streams], np.int64)
    n_spans = np.array([len(s.keyword_spans) for s in streams], np.int64)
    spans = np.array([sp for s in streams for sp in s.keyword_spans], np.float64).reshape(-1, 2)
    n_ignore = np.array([len(s.ignore_spans) for s in streams], np.int64)
    ignore = np.array([sp for s in streams for sp in s.ignore_spans], np.float64).reshape(-1, 2)
    audio = np.concatenate([s.audio for s in streams]) if streams else np.zeros(0, np.float32)
    # 16-bit PCM, as a WAV would hold it: half the disk of float32, quantisation noise at -96 dBFS.
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                pcm=pcm,
                lengths=lengths,
                n_spans=n_spans,
                spans=spans,
                n_ignore=n_ignore,
                ignore=ignore,
                groups=np.array([s.group for s in streams]),
                names=np.array([s.name for s in streams]),
                speakers=np.array([who for s in streams for who in s.keyword_speakers()], str),
            )


def _pairs(rows: np.ndarray) -> list[tuple[float, float]]:
    """``[n, 2]`` rows as (start_s, end_s) pairs of Python floats."""
    return [(float(start), float(end)) for start, end in rows]


def load_streams(path: str | Path) -> list[Stream]:
    """What :func:`save_streams` wrote (audio back as float32)."""
    with np.load(path) as z:
        audio = z["pcm"].astype(np.float32) / 32767
        lengths, n_spans, spans = z["lengths"], z["n_spans"], z["spans"]
        n_ignore, ignore = z["n_ignore"], z["ignore"]
        groups, names = z["groups"].tolist(), z["names"].tolist()
        # caches written before speakers were kept say nothing of them
        speakers = z["speakers"].tolist() if "speakers" in z.files else [""] * len(spans)
    streams, a, k, j = [], 0, 0, 0
    for length, n, m, group, name in zip(lengths, n_spans, n_ignore, groups, names):
        said = [str(x) for x in speakers[k : k + n]]
        streams.append(
            Stream(
                audio[a : a + length],
                _pairs(spans[k : k + n]),
                str(group),
                str(name),
                _pairs(ignore[j : j + m]),
                said,
            )
        )
        a, k, j = a + int(length), k + int(n), j + int(m)
    return streams
