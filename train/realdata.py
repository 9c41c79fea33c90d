"""The real recordings in ``../shared/data`` (development machines and CI only).

Located repo-relative (``<repo>/../shared/data``) or by the environment variable
``WAKEWORD_SHARED_DATA``; :func:`locate` returns None when absent, and every caller must
cope (a user's machine has no such folder). Its ``manifest.csv`` lists each file with a
label (``positive`` / ``negative_speech`` / ``noise``), source, licence and speaker.

Use: real keyword clips are the real-voice *evaluation* set (training validation, the
benchmark) and never go into the training set. Real negatives and noise may be used for
training only through ``[data] use_shared_negatives`` / ``use_shared_noise`` (default off;
recorded in the dataset manifest), so reported real-voice false-accept figures stay honest.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "WAKEWORD_SHARED_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "manifest.csv"


@dataclass(frozen=True)
class RealClip:
    path: Path
    """Absolute path of the WAV."""
    label: str
    """``positive`` | ``negative_speech`` | ``noise``."""
    source: str
    license: str
    speaker: str
    """Who speaks; a file whose speaker the manifest does not know (empty or ``unknown``) is its own
    ``unknown:<path>``, so that splits by speaker can still divide such a folder, file by file."""
    kw_span_s: tuple[float, float] | None = None
    """Where the keyword is spoken in the file (s), when the manifest says (a sentence ending in it)."""


def locate() -> Path | None:
    """The shared data folder (it must hold manifest.csv), or None."""
    env = os.environ.get(ENV_VAR)
    root = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return root.resolve() if (root / MANIFEST).is_file() else None


def manifest(root: Path | None = None) -> list[RealClip]:
    """Every file listed in the manifest (that exists), or [] without shared data."""
    root = root or locate()
    if root is None:
        return []
    out = []
    with open(root / MANIFEST, newline="") as f:
        for row in csv.DictReader(f):
            path = root / row["path"]
            if path.is_file():
                out.append(
                    RealClip(
                        path,
                        row.get("label", ""),
                        row.get("source", ""),
                        row.get("license", ""),
                        _speaker(row),
                        _span(row),
                    )
                )
    return out


def _speaker(row: dict) -> str:
    speaker = (row.get("speaker") or "").strip()
    return speaker if speaker and speaker != "unknown" else f"unknown:{row['path']}"


def _span(row: dict) -> tuple[float, float] | None:
    try:
        start, end = float(row.get("kw_start_s") or ""), float(row.get("kw_end_s") or "")
    except ValueError:
        return None
    return (start, end) if 0 <= start < end else None


def keyword_spans(root: Path | None = None) -> dict[Path, tuple[float, float]]:
    """Path -> the keyword's span (s) for every file whose manifest row gives one."""
    return {c.path: c.kw_span_s for c in manifest(root) if c.kw_span_s is not None}


def keyword_clips(keyword: str, root: Path | None = None) -> list[RealClip]:
    """Real recordings of ``keyword`` (files under ``<keyword>/`` labelled positive)."""
    prefix = keyword.lower().replace(" ", "_")
    base = root or locate()
    if base is None:
        return []
    return [c for c in manifest(base) if c.label == "positive" and c.path.relative_to(base).parts[0].lower() == prefix]


def negative_clips(root: Path | None = None, keyword: str | None = None) -> list[RealClip]:
    """Real non-keyword speech (includes the 8 kHz spoken-digit set). With ``keyword``, the
    files known to say that word anyway are left out (:data:`MENTIONS_FILE`): a detection
    there is right, and counting it as a false accept would punish a model for hearing well."""
    clips = [c for c in manifest(root) if c.label == "negative_speech"]
    if keyword:
        said = mentions(keyword)
        clips = [c for c in clips if _relative(c.path, root) not in said]
    return clips


MENTIONS_FILE = Path(__file__).resolve().parent / "corpus" / "shared-data-mentions.csv"
"""Files of ``../shared/data`` labelled ``negative_speech`` that say one of its keywords all
the same (the WUW Corpus II sentences talk about computers): ``path,keyword,evidence``."""


def mentions(keyword: str) -> set[str]:
    """Manifest-relative paths of negative files that say ``keyword``."""
    want = keyword.lower().replace(" ", "_")
    with open(MENTIONS_FILE, newline="") as f:
        return {
            row["path"]
            for row in csv.DictReader(line for line in f if not line.startswith("#"))
            if row["keyword"].lower() == want
        }


def speaker_position(speaker: str) -> float:
    """A stable place for ``speaker`` in [0, 1) (a hash of the name): training takes the
    speakers below ``[data] shared_negatives_share``, export's real-negative calibration those
    at or above ``1 - [export] shared_calibration_share``, so the two never meet when the shares
    add up to at most 1; the rest are the held-out speakers every real-voice figure stands on."""
    import hashlib

    h = int.from_bytes(hashlib.sha256(f"shared-speaker:{speaker}".encode()).digest()[:8], "big")
    return h / 2**64


def speaker_trains(speaker: str, share: float) -> bool:
    """Whether ``speaker``'s negatives train under ``[data] shared_negatives_share = share``."""
    return speaker_position(speaker) < share


def training_negatives(share: float, root: Path | None = None) -> tuple[list[RealClip], list[str]]:
    """The negative clips of the speakers that train at ``share``, and those speakers (sorted)."""
    clips = [c for c in negative_clips(root) if speaker_trains(c.speaker, share)]
    return clips, sorted({c.speaker for c in clips})


def calibration_negatives(
    share: float, keyword: str, exclude_speakers=(), root: Path | None = None
) -> tuple[list[RealClip], list[str]]:
    """The negative clips (never saying ``keyword``) of the speakers export calibrates on at
    ``[export] shared_calibration_share = share`` -- the top ``share`` of :func:`speaker_position`,
    minus ``exclude_speakers`` (those who trained) -- and those speakers (sorted)."""
    if share <= 0:
        return [], []
    left_out = set(exclude_speakers)
    clips = [
        c
        for c in negative_clips(root, keyword)
        if speaker_position(c.speaker) >= 1.0 - share and c.speaker not in left_out
    ]
    return clips, sorted({c.speaker for c in clips})


def _relative(path: Path, root: Path | None) -> str:
    base = root or locate()
    try:
        return path.relative_to(base).as_posix() if base else path.as_posix()
    except ValueError:
        return path.as_posix()


def noise_clips(root: Path | None = None) -> list[RealClip]:
    """Real background noise recordings."""
    return [c for c in manifest(root) if c.label == "noise"]
