"""The audio files of a folder, as the labelling page lists them.

Any audio libsndfile reads is listed (WAV, FLAC, OGG), at any depth below the root, hidden
files and temp files excluded. Where a file sits says what it probably is: a path through
``positive/`` holds keyword takes, ``negative/`` negative phrases, ``field/`` audio the Pi saved
around a detection (docs/TEAM.md, "Folder conventions"). A ``<stem>.json`` beside the audio
(take metadata from ``wakeword record``, detection details from the daemon) is shown as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import soundfile as sf

from train.audio_io import AUDIO_SUFFIXES
from train.label.labels import LabelState, read_label

GROUPS = ("positive", "negative", "field", "check")


class CatalogError(ValueError):
    """A folder that cannot be labelled (missing, or no audio in it); one clear line."""


@dataclass(frozen=True)
class Item:
    path: str
    """Path relative to the root, with forward slashes: the item's id in the API."""
    group: str
    """``positive``, ``negative``, ``field``, ``check`` or ``other`` (from the folder it is in)."""
    duration_s: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    error: str = ""
    """Why the audio cannot be used (unreadable, empty); empty when it is fine."""
    meta: dict = field(default_factory=dict)
    """The ``<stem>.json`` sidecar, if any (or ``{"error": ...}`` if it is not JSON)."""


def group_of(rel: Path) -> str:
    for part in reversed(rel.parent.parts):
        if part in GROUPS:
            return part
    return "other"


def audio_files(root: Path) -> list[Path]:
    """Audio below ``root``, sorted by path; hidden files and folders are skipped."""
    found = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in AUDIO_SUFFIXES and path.is_file():
            found.append(path)
    return sorted(found)


def describe(root: Path, path: Path) -> Item:
    """An :class:`Item` for one file; reading only the header, so listing stays fast."""
    rel = path.relative_to(root)
    item = Item(path=rel.as_posix(), group=group_of(rel), meta=read_sidecar(path))
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        return replace(item, error=audio_error(exc, path))
    if info.frames <= 0:
        return replace(item, error="empty audio (no samples)")
    return replace(item, duration_s=info.frames / info.samplerate, sample_rate=info.samplerate, channels=info.channels)


def read_sidecar(audio: Path) -> dict:
    side = audio.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        data = json.loads(side.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as exc:
        return {"error": f"{side.name} is not readable JSON: {one_line(exc)}"}
    return data if isinstance(data, dict) else {"value": data}


def audio_error(exc: BaseException, path: Path) -> str:
    """libsndfile's complaint in one line, without the absolute path it repeats."""
    text = one_line(exc).replace(f"Error opening {str(path)!r}: ", "").rstrip(".")
    return f"cannot read audio: {text}"


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


class Catalog:
    """The folder being labelled; every call re-reads the disk, so edits by others show up."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()

    def check(self) -> list[Path]:
        """The audio files, or a :class:`CatalogError` saying why there is nothing to label."""
        if not self.root.exists():
            raise CatalogError(
                f"{self.root} does not exist yet: record takes with `make record`, "
                "or fetch detections from a Pi with `make collect HOST=pi`"
            )
        if not self.root.is_dir():
            raise CatalogError(f"{self.root} is not a folder")
        files = audio_files(self.root)
        if not files:
            raise CatalogError(
                f"no audio files ({', '.join(sorted(AUDIO_SUFFIXES))}) under {self.root}: record some with "
                "`make record`, or fetch detections from a Pi with `make collect HOST=pi`"
            )
        return files

    def items(self) -> list[Item]:
        return [describe(self.root, p) for p in audio_files(self.root)]

    def resolve(self, rel: str) -> Path:
        """The file for an item id; only listed audio files, never anything else on disk."""
        if "\0" in rel:  # the OS would refuse it with a ValueError
            raise KeyError(rel)
        path = (self.root / rel).resolve()
        if path.parent != self.root and self.root not in path.parents:
            raise KeyError(rel)
        if path.suffix.lower() not in AUDIO_SUFFIXES or not path.is_file():
            raise KeyError(rel)
        if any(part.startswith(".") for part in path.relative_to(self.root).parts):
            raise KeyError(rel)
        return path

    def label(self, item: Item) -> LabelState:
        return read_label(self.root / item.path, item.duration_s)
