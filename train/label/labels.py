"""Label files: ``<audio>.label.json`` beside each recording (docs/TEAM.md, "Folder conventions").

``{"version": 1, "kind": "keyword"|"negative"|"true_accept"|"false_accept"|"unlabeled",
   "keyword_spans": [[start_s, end_s], ...], "updated": "<ISO 8601>"}``

Spans are only meaningful for the kinds that contain the keyword (``keyword``,
``true_accept``); a file that has spans with another kind contradicts itself. Unknown extra
fields in an existing file are kept when it is rewritten.

A label file that cannot be parsed or breaks these rules is never silently overwritten:
:func:`read_label` copies it to ``<audio>.label.json.bad`` (``.bad.2``, ... if one with other
content exists), reports the problem in one line and treats the audio as unlabelled; the
next save replaces the original, whose content survives in the ``.bad`` copy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from device.fsutil import atomic_write_bytes, atomic_write_text

log = logging.getLogger(__name__)

VERSION = 1
LABEL_SUFFIX = ".label.json"
BAD_SUFFIX = ".bad"
KINDS = ("keyword", "negative", "true_accept", "false_accept", "unlabeled")
KEYWORD_KINDS = frozenset({"keyword", "true_accept"})
"""Kinds whose audio holds the keyword; only these may carry ``keyword_spans``."""
SPAN_DECIMALS = 3
"""Spans are stored rounded to milliseconds."""
DURATION_SLACK_S = 0.05
"""A span may end this far past the audio's end (rounding, a resampled copy) before it is nonsense."""


class LabelError(ValueError):
    """A label that breaks the format; the message is one line naming what is wrong."""


@dataclass(frozen=True)
class Label:
    kind: str = "unlabeled"
    """One of :data:`KINDS`."""
    keyword_spans: tuple[tuple[float, float], ...] = ()
    """Where the keyword is spoken: ``(start_s, end_s)`` pairs, sorted, not overlapping."""
    updated: str = ""
    """When the label was last saved (ISO 8601, UTC); empty if never."""
    extra: dict = field(default_factory=dict, compare=False)
    """Fields of the file this code does not know; written back unchanged."""

    def to_json(self) -> dict:
        return {
            **self.extra,
            "version": VERSION,
            "kind": self.kind,
            "keyword_spans": [list(s) for s in self.keyword_spans],
            "updated": self.updated,
        }


@dataclass(frozen=True)
class LabelState:
    label: Label
    """The label to show and edit (unlabelled when the file is missing or bad)."""
    problem: str = ""
    """Why the file on disk was not used, in one line; empty when it was fine or absent."""
    exists: bool = False
    """Whether a usable label file exists."""


def label_path(audio: Path) -> Path:
    return audio.with_name(audio.name + LABEL_SUFFIX)


def parse(data: object, duration_s: float | None) -> Label:
    """Validate decoded JSON against the format; ``duration_s`` (if known) bounds the spans."""
    if not isinstance(data, dict):
        raise LabelError("not a JSON object")
    if data.get("version") != VERSION:
        raise LabelError(f"version is {data.get('version')!r}, expected {VERSION}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise LabelError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    spans = normalise_spans(data.get("keyword_spans", []), duration_s)
    if spans and kind not in KEYWORD_KINDS:
        raise LabelError(f"kind {kind!r} cannot have keyword_spans")
    updated = data.get("updated", "")
    if not isinstance(updated, str):
        raise LabelError("updated must be an ISO 8601 string")
    extra = {k: v for k, v in data.items() if k not in ("version", "kind", "keyword_spans", "updated")}
    return Label(kind=kind, keyword_spans=spans, updated=updated, extra=extra)


def normalise_spans(raw: object, duration_s: float | None) -> tuple[tuple[float, float], ...]:
    """Check ``[[start_s, end_s], ...]`` and return it rounded and sorted; overlaps are errors."""
    if not isinstance(raw, list):
        raise LabelError("keyword_spans must be a list of [start_s, end_s] pairs")
    spans = []
    for item in raw:
        if (
            not isinstance(item, (list, tuple))
            or len(item) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in item)
        ):
            raise LabelError(f"keyword span {item!r} is not a [start_s, end_s] pair of numbers")
        start, end = (round(float(v), SPAN_DECIMALS) for v in item)
        if not 0.0 <= start < end:
            raise LabelError(f"keyword span {item!r} must have 0 <= start_s < end_s")
        if duration_s is not None and end > duration_s + DURATION_SLACK_S:
            raise LabelError(f"keyword span {item!r} ends after the audio ({duration_s:.3f} s)")
        spans.append((start, end))
    spans.sort()
    for (_, end), (start, _) in zip(spans, spans[1:]):
        if start < end:
            raise LabelError(f"keyword spans overlap at {start} s")
    return tuple(spans)


def load_label(audio: Path, duration_s: float | None = None) -> Label | None:
    """The label beside ``audio`` (at :func:`label_path`), None when there is none: the one reader
    of label files. A symbolic link, unreadable bytes, bad JSON or a label the format refuses raise
    :class:`LabelError` naming the file; each caller decides whether that stops it or is skipped."""
    path = label_path(audio)
    if path.is_symlink():  # could point anywhere on disk: never read (nor copy) what it names
        raise LabelError(f"{path.name} is a symbolic link (a label file must be a plain file beside its audio)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise LabelError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    try:
        return parse(json.loads(raw), duration_s)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise LabelError(f"{path.name}: not valid JSON ({exc})") from None
    except LabelError as exc:
        raise LabelError(f"{path.name}: {exc}") from None


def read_label(audio: Path, duration_s: float | None) -> LabelState:
    """The label of ``audio`` for the labelling tool; a bad label file is kept as a ``.bad`` copy and reported."""
    path = label_path(audio)
    try:
        label = load_label(audio, duration_s)
    except LabelError as exc:
        try:
            raw = None if path.is_symlink() else path.read_bytes()
        except OSError:
            raw = None
        if raw is None:
            problem = f"{exc}; ignored, treated as unlabelled"
        else:
            problem = f"{exc}; kept as {keep_bad_copy(path, raw).name}, treated as unlabelled"
        log.warning("%s", problem)
        return LabelState(Label(), problem=problem)
    return LabelState(Label()) if label is None else LabelState(label, exists=True)


def keep_bad_copy(path: Path, raw: bytes) -> Path:
    """Copy a bad label file's bytes to the first free (or identical) ``.bad[.N]`` beside it."""
    n = 1
    while True:
        bad = path.with_name(path.name + BAD_SUFFIX + ("" if n == 1 else f".{n}"))
        if not bad.exists():
            atomic_write_bytes(bad, raw)
            return bad
        if bad.read_bytes() == raw:
            return bad
        n += 1


def write_label(audio: Path, label: Label) -> Label:
    """Save ``label`` atomically beside ``audio`` with ``updated`` set to now; returns what was saved."""
    saved = Label(
        kind=label.kind,
        keyword_spans=label.keyword_spans,
        extra=label.extra,
        updated=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    atomic_write_text(label_path(audio), json.dumps(saved.to_json(), indent=1) + "\n")
    return saved
