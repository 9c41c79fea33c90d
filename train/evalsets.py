"""The evaluation sets training validates on (and export and the benchmark can reuse).

- ``synthetic``: the dataset's ``val`` split -- clips voiced by TTS voices that training never
  heard, with their keyword spans from the manifest. This set picks the best checkpoint.
- ``real_clean`` / ``real_<snr>db``: when the real recordings of ``../shared/data`` are there,
  its takes of the keyword laid out in positive streams (:func:`train.streams.positive_streams`)
  and its non-keyword speech in negative streams, once clean and once over its recorded noise
  at ``StreamConfig.snr_db``. Reported at every validation, never used to select (users will
  not have them), so we see how far training on synthetic voices reaches real ones.

Built streams are cached under ``<build>/streams/`` keyed by their inputs, so a second run
loads them in seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from device.params import AudioParams
from train import realdata
from train.streams import (
    Clip,
    Stream,
    StreamConfig,
    cache_key,
    cached,
    file_fingerprint,
    negative_streams,
    positive_streams,
    speech_span_s,
)
from train.validate import EvalSet, from_clipset, from_streams

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RealFiles:
    """The real recordings, by role (sorted paths)."""

    keyword: list[Path]
    negative: list[Path]
    noise: list[Path]
    speakers: dict[Path, str] = field(default_factory=dict)
    """Who said each keyword take, where known (``train.realdata``'s speaker names)."""


def locate_real(real_data: str, keyword: str, exclude_speakers=()) -> RealFiles | None:
    """``real_data``: "auto" (``../shared/data`` via :mod:`train.realdata`, if present), "off", or
    a folder laid out like it (with its ``manifest.csv``). None when there is nothing for this
    keyword. ``exclude_speakers``: speakers whose audio trained the model (``[data]
    use_shared_negatives``): their takes and negatives are left out of every figure."""
    if real_data == "off":
        return None
    root = realdata.locate() if real_data == "auto" else Path(real_data)
    if root is None:
        return None
    if not (root / realdata.MANIFEST).is_file():
        log.warning("%s has no %s; reporting synthetic voices only", root, realdata.MANIFEST)
        return None
    held_out = set(exclude_speakers)
    takes = {c.path: c.speaker for c in realdata.keyword_clips(keyword, root) if c.speaker not in held_out}
    files = RealFiles(
        sorted(takes),
        sorted(c.path for c in realdata.negative_clips(root, keyword) if c.speaker not in held_out),
        sorted(c.path for c in realdata.noise_clips(root)),
        takes,
    )
    if not files.keyword or not files.negative or not files.noise:
        log.info("no real recordings of %r (with negatives and noise) under %s", keyword, root)
        return None
    return files


def real_streams(
    files: RealFiles, params: AudioParams, cfg: StreamConfig, cache_dir: Path | None
) -> dict[str, list[Stream]]:
    """``{"real_clean": [...], "real_<snr>db": [...]}``: positive then negative streams of each."""
    from train.audio_io import read_audio

    known = realdata.keyword_spans()
    key = cache_key(
        files=[file_fingerprint(files.keyword), file_fingerprint(files.negative), file_fingerprint(files.noise)],
        params=params,
        cfg=cfg,
        spans=sorted((str(p), known[p]) for p in files.keyword if p in known),
        speakers=[files.speakers.get(p, "") for p in files.keyword],
    )
    noisy = f"real_{cfg.snr_db:g}db"
    loaded: dict = {}

    def sources():
        if not loaded:
            log.info(
                "reading %d real keyword takes, %d negatives, %d noise files",
                len(files.keyword),
                len(files.negative),
                len(files.noise),
            )
            pos = []
            for p in files.keyword:
                audio = read_audio(p, params)
                # a keyword at the end of a sentence: the manifest's span, not the whole speech
                span = known.get(p) or speech_span_s(audio, params)
                pos.append(Clip(audio, span, p.name, files.speakers.get(p, "")))
            neg = [Clip(read_audio(p, params), None, p.name) for p in files.negative]
            loaded.update(pos=pos, neg=neg, noise=[read_audio(p, params) for p in files.noise])
        return loaded

    def build(group: str, snr_db: float | None):
        def run() -> list[Stream]:
            src = sources()
            return positive_streams(src["pos"], params, cfg, src["noise"], snr_db, cfg.seed, group) + negative_streams(
                src["neg"], params, cfg, src["noise"], snr_db, cfg.seed + 1, group
            )

        return run

    return {
        "real_clean": cached(cache_dir, "real_clean", key, build("real_clean", None)),
        noisy: cached(cache_dir, noisy, key, build(noisy, cfg.snr_db)),
    }


def trained_speakers(clips) -> list[str]:
    """The ../shared/data speakers a dataset trained on (its manifest's ``shared_data``)."""
    summary = clips.summary() if callable(getattr(clips, "summary", None)) else {}
    return list((summary.get("shared_data") or {}).get("trained_speakers") or [])


def build_trained_speakers(build: Path) -> list[str]:
    """The ../shared/data speakers ``<build>/dataset`` trained on ([] without a readable dataset)."""
    from train.dataset import DatasetError, open_split

    try:
        return trained_speakers(open_split(Path(build) / "dataset", "val"))
    except (DatasetError, OSError, ValueError, KeyError):
        return []


def build(
    val_clips,
    params: AudioParams,
    cfg: StreamConfig,
    real_data: str,
    cache_dir: Path | None,
    keyword: str | None = None,
    also_exclude=(),
) -> list[EvalSet]:
    """Every evaluation set, the selecting one (``synthetic``) first. ``also_exclude``: more
    ../shared/data speakers to leave out (besides those the dataset trained on)."""
    sets = [from_clipset(val_clips, "synthetic")]
    if not keyword:
        keyword = getattr(val_clips, "keyword", "")
    files = locate_real(real_data, keyword, [*trained_speakers(val_clips), *also_exclude])
    if files is not None:
        for name, streams in real_streams(files, params, cfg, cache_dir).items():
            sets.append(from_streams(streams, params, name, cache_dir))
    return sets
