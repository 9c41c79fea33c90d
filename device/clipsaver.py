"""Saving the audio around each detection, for review and retraining (``make collect``).

The saver keeps the last ``pre_roll_s + post_roll_s`` (plus the reporting lag) of the audio
the model heard (mono, model rate). When a detection comes it waits until ``post_roll_s`` more has arrived, then
writes ``<stamp>_<keyword>.wav`` (16-bit PCM) and ``<stamp>_<keyword>.json`` beside it,
both atomically, the WAV first (a sidecar never points at a missing WAV). The JSON holds::

    {"version": 1, "keyword", "score", "time_s" (stream time of the detection),
     "clip_start_s" (stream time of the WAV's first sample), "detected_at_s" (offset of the
     detection inside the WAV), "wall_time" (ISO 8601, UTC), "model_version",
     "threshold", "sample_rate", "host"}

Disk use is capped: after each save the oldest saved pairs are deleted until the folder
holds at most ``max_mb``.

:class:`SnippetKeeper` (``[snippets]``, off unless enabled) keeps the other kind of audio: short
random snippets of what the Pi hears, *never near a detection* (nor near a frame scoring above
``near_miss`` of the threshold), as ``<stamp>_snippet.wav`` + ``.json``. They are the room's own
sound -- TV, talk, the kettle -- that ``make collect`` fetches and ``make finetune`` learns as
negatives. Local files only, capped the same way.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from device.decision import Detection
from device.fsutil import atomic_write_text
from device.wavio import write_wav

log = logging.getLogger(__name__)

SIDECAR_VERSION = 1


class _History:
    """The newest audio of a stream, at most ``keep`` samples, placed in stream time (s): what
    both keepers cut their clips from."""

    def __init__(self, keep: int, rate_hz: int):
        self.keep = keep
        self.rate_hz = rate_hz
        self.audio = np.zeros(0, np.float32)
        """float32 ``[n]``, n <= ``keep``, its last sample just before :attr:`end_s`."""
        self.end_s = 0.0
        """Stream time of the end of :attr:`audio`."""

    @property
    def start_s(self) -> float:
        """Stream time of the first sample of :attr:`audio`."""
        return self.end_s - len(self.audio) / self.rate_hz

    def add(self, audio: np.ndarray, start_s: float) -> None:
        """``audio`` (float32 ``[n]``) starting at stream time ``start_s``; the oldest beyond ``keep`` go."""
        self.audio = np.concatenate([self.audio, audio])[-self.keep :]
        self.end_s = start_s + len(audio) / self.rate_hz

    def clear(self) -> None:
        """Forget the audio (the stream jumped)."""
        self.audio = np.zeros(0, np.float32)

    def index(self, time_s: float) -> int:
        """Index into :attr:`audio` of stream time ``time_s`` (negative: before the history)."""
        return len(self.audio) - int(round((self.end_s - time_s) * self.rate_hz))

    def cut(self, i0: int, i1: int) -> np.ndarray:
        """``audio[i0:i1]``, indices before the history counted as its start."""
        return self.audio[max(0, i0) : max(0, i1)]


class _Keeper:
    """What both keepers share: the model they save for, the history they cut clips from, and saving
    a clip with its sidecar into their folder, the oldest deleted beyond ``max_mb``."""

    saving: str
    """What a clip is, in the warning when the disk refuses one ("could not save <saving> in ...")."""
    deleting: str
    """What a clip is, in the line the disk cap logs ("deleted <deleting> <stem>")."""

    def __init__(
        self,
        folder: str,
        max_mb: float,
        rate_hz: int,
        keyword: str,
        model_version: str,
        threshold: float,
        keep_s: float,
    ):
        self.rate_hz = rate_hz
        self.keyword = keyword
        self.model_version = model_version
        self.threshold = threshold
        self.dir = Path(folder)
        self.max_mb = max_mb
        self._history = _History(int(round(keep_s * rate_hz)), rate_hz)

    def _save(self, stem: str, clip: np.ndarray, fields: dict) -> bool:
        """:func:`save_clip` into the folder, then :func:`enforce_cap` -> False when the disk refused it."""
        made_by = (self.model_version, self.threshold)
        if not save_clip(self.dir / stem, clip, self.rate_hz, fields, made_by, self.saving):
            return False
        enforce_cap(self.dir, self.max_mb, self.deleting)
        return True


@dataclass(frozen=True)
class SaveConfig:
    enabled: bool = False
    """Save the audio around each detection."""
    dir: str = "/var/lib/wakeword/detections"
    """Folder for the WAV + JSON pairs (under the service's StateDirectory)."""
    pre_roll_s: float = 2.0
    """Audio kept before the detection (s); the keyword itself lies in here."""
    post_roll_s: float = 1.0
    """Audio kept after the detection (s)."""
    max_mb: float = 200.0
    """Disk cap for the folder (MB); the oldest clips are deleted beyond it."""

    def __post_init__(self) -> None:
        if self.pre_roll_s < 0 or self.post_roll_s < 0 or self.pre_roll_s + self.post_roll_s <= 0:
            raise ValueError("pre_roll_s and post_roll_s must be >= 0 and not both 0")
        if self.max_mb <= 0:
            raise ValueError(f"max_mb must be positive, got {self.max_mb}")


class ClipSaver(_Keeper):
    saving = "detection audio"
    deleting = "saved detection"

    def __init__(
        self,
        cfg: SaveConfig,
        rate_hz: int,
        keyword: str,
        model_version: str = "",
        threshold: float = 0.0,
        lag_s: float = 5.0,
    ):
        """``lag_s``: how far behind the newest audio a detection may be reported (the
        longest inference step), so its pre-roll is still in the history."""
        keep_s = cfg.pre_roll_s + cfg.post_roll_s + lag_s
        super().__init__(cfg.dir, cfg.max_mb, rate_hz, keyword, model_version, threshold, keep_s)
        self.cfg = cfg
        self._pending: list[tuple[Detection, float]] = []  # (detection, wall clock time)
        self.saved = 0

    def discontinuity(self) -> None:
        """The stream jumped (drop, reconnect): write what is pending, start a fresh history."""
        self.flush()
        self._history.clear()

    def feed(self, audio: np.ndarray, start_s: float) -> None:
        """Audio the model heard, float32 ``[n]`` starting at stream time ``start_s``."""
        self._history.add(audio, start_s)
        while self._pending and self._history.end_s >= self._pending[0][0].time_s + self.cfg.post_roll_s - 1e-9:
            self._write(*self._pending.pop(0))

    def detected(self, det: Detection) -> None:
        self._pending.append((det, time.time()))

    def scored(self, start_s: float, probs: np.ndarray, threshold: float | None = None) -> None:
        """Frame probabilities (unused here; :class:`SnippetKeeper` avoids near misses with them)."""

    def flush(self) -> None:
        """Write pending detections with whatever post-roll exists (end of stream)."""
        while self._pending:
            self._write(*self._pending.pop(0))

    def _write(self, det: Detection, wall: float) -> None:
        history = self._history
        start_s = max(det.time_s - self.cfg.pre_roll_s, history.start_s)
        end_s = min(det.time_s + self.cfg.post_roll_s, history.end_s)
        clip = history.cut(history.index(start_s), history.index(end_s))
        stamp = datetime.fromtimestamp(wall, UTC)
        keyword = det.keyword or self.keyword
        stem = _stem(wall, det.time_s, keyword)
        fields = {
            "keyword": keyword,
            "score": round(det.score, 6),
            "time_s": round(det.time_s, 6),
            "clip_start_s": round(start_s, 6),
            "detected_at_s": round(det.time_s - start_s, 6),
            "wall_time": stamp.isoformat(timespec="milliseconds"),
        }
        if self._save(stem, clip, fields):
            self.saved += 1


def write_pair(stem: Path, clip: np.ndarray, rate_hz: int, sidecar: str) -> None:
    """``<stem>.wav`` then ``<stem>.json``, each atomically; when the sidecar cannot be written (the
    disk filled up after the WAV) the WAV goes too: a WAV is never left without its JSON."""
    wav = stem.with_name(stem.name + ".wav")
    write_wav(wav, clip, rate_hz)
    try:
        atomic_write_text(stem.with_name(stem.name + ".json"), sidecar)
    except BaseException:
        wav.unlink(missing_ok=True)
        raise


def save_clip(stem: Path, clip: np.ndarray, rate_hz: int, fields: dict, made_by: tuple[str, float], what: str) -> bool:
    """:func:`write_pair` with the sidecar every saved clip has (``fields`` plus the format version,
    the model version and threshold ``made_by``, the rate and the host) -> False, logged, when the
    disk refuses it: saving is a convenience, and a full or read-only disk must not stop detection."""
    sidecar = {
        "version": SIDECAR_VERSION,
        **fields,
        "model_version": made_by[0],
        "threshold": made_by[1],
        "sample_rate": rate_hz,
        "host": socket.gethostname(),
    }
    try:
        write_pair(stem, clip, rate_hz, json.dumps(sidecar, indent=1) + "\n")
    except OSError as exc:
        log.warning("could not save %s in %s: %s", what, stem.parent, exc.strerror or exc)
        return False
    return True


def _stem(wall: float, time_s: float, name: str) -> str:
    """``<UTC wall time>_t<stream ms>_<name>``: wall time first (the disk cap deletes the oldest
    by name); the stream time keeps two files within one millisecond of wall time apart (files
    fed faster than real time)."""
    stamp = datetime.fromtimestamp(wall, UTC)
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name) or "keyword"
    return f"{stamp.strftime('%Y%m%dT%H%M%S')}{stamp.microsecond // 1000:03d}Z_t{int(round(time_s * 1000)):09d}_{safe}"


def enforce_cap(folder: Path, max_mb: float, what: str) -> None:
    """Delete the oldest WAV/JSON pairs (by name) until ``folder`` holds at most ``max_mb``.

    Another process (`make collect`, a reviewer) may delete files while this runs: a file that is
    gone counts as 0 bytes, never as an error in the detection path."""
    sizes: dict[Path, int] = {}
    try:
        entries = list(folder.iterdir())
    except OSError:
        return
    for p in entries:
        if p.suffix in (".wav", ".json") and not p.name.startswith("."):
            try:
                if p.is_file():
                    sizes[p] = p.stat().st_size
            except OSError:
                continue
    files = list(sizes)
    total = sum(sizes.values())
    cap = max_mb * 1e6
    if total <= cap:
        return
    by_stem: dict[str, list[Path]] = {}
    for p in files:  # x.wav, x.json and a reviewer's x.label.json go together
        by_stem.setdefault(p.name.split(".")[0], []).append(p)
    for stem in sorted(by_stem):  # stems start with a UTC timestamp: oldest first
        if total <= cap:
            break
        for p in by_stem[stem]:
            total -= sizes[p]
            p.unlink(missing_ok=True)
        log.info("disk cap %.0f MB: deleted %s %s", max_mb, what, stem)


@dataclass(frozen=True)
class SnippetConfig:
    enabled: bool = False
    """Keep random snippets of what the Pi hears (the room's own sound, for ``make finetune``)."""
    dir: str = "/var/lib/wakeword/snippets"
    """Folder for the ``<stamp>_snippet.wav`` + ``.json`` pairs (under the service's StateDirectory)."""
    per_hour: float = 6.0
    """Snippets kept per hour of audio on average (random times)."""
    length_s: float = 5.0
    """Length of one snippet (s)."""
    guard_s: float = 10.0
    """No snippet holds audio within this many seconds of a detection or a near miss."""
    near_miss: float = 0.5
    """A frame scoring at least this fraction of the threshold counts as a near miss."""
    max_mb: float = 100.0
    """Disk cap for the folder (MB); the oldest snippets are deleted beyond it."""

    def __post_init__(self) -> None:
        if not 0 < self.per_hour <= 720:
            raise ValueError(f"per_hour must be in (0, 720], got {self.per_hour}")
        if not 0.5 <= self.length_s <= 60:
            raise ValueError(f"length_s must be in [0.5, 60], got {self.length_s}")
        if not 0 <= self.guard_s <= 600:
            raise ValueError(f"guard_s must be in [0, 600], got {self.guard_s}")
        if not 0 < self.near_miss <= 1:
            raise ValueError(f"near_miss must be in (0, 1], got {self.near_miss}")
        if not 0 < self.max_mb < math.inf:
            raise ValueError(f"max_mb must be positive, got {self.max_mb}")


class SnippetKeeper(_Keeper):
    """Random snippets of the stream, each written once ``guard_s`` of audio after it has passed
    with no detection or near miss within ``guard_s`` of it. Snippets never span a gap in the
    stream and digital silence is not kept. Same calls as :class:`ClipSaver` (``feed``,
    ``detected``, ``discontinuity``, ``flush``) plus ``scored`` (every output frame's probability)."""

    saving = "a snippet"
    deleting = "snippet"

    def __init__(
        self,
        cfg: SnippetConfig,
        rate_hz: int,
        keyword: str,
        model_version: str = "",
        threshold: float = 0.5,
        hop_s: float = 0.08,
        lag_s: float = 5.0,
        seed: int | None = None,
    ):
        keep_s = cfg.length_s + cfg.guard_s + lag_s + 1.0
        super().__init__(cfg.dir, cfg.max_mb, rate_hz, keyword, model_version, threshold, keep_s)
        self.cfg = cfg
        self.hop_s = hop_s
        self.lag_s = lag_s
        self._rng = np.random.default_rng(seed)
        self._next: float | None = None  # stream time the next snippet starts
        self._alarms: list[float] = []  # stream times of detections and near misses
        self.kept = 0
        self.skipped = 0

    def _draw(self, after_s: float) -> float:
        """Stream time the next snippet starts: random (exponential gaps) after ``after_s``."""
        return after_s + float(self._rng.exponential(3600.0 / self.cfg.per_hour))

    def discontinuity(self) -> None:
        """The stream jumped: a snippet never spans the gap; draw the next one afresh."""
        self._history.clear()
        self._next = None

    def feed(self, audio: np.ndarray, start_s: float) -> None:
        history = self._history
        nxt = self._next if self._next is not None and len(history.audio) else self._draw(start_s)
        history.add(audio, start_s)
        buf_start = history.start_s
        while history.end_s >= nxt + self.cfg.length_s + self.cfg.guard_s + self.lag_s:
            if nxt < buf_start - 1e-6:  # its audio is gone (a long lag): skip it
                self.skipped += 1
            else:
                self._decide(nxt)
            nxt = self._draw(nxt + self.cfg.length_s)
        self._next = nxt
        self._alarms = [t for t in self._alarms if t >= buf_start - self.cfg.guard_s]

    def detected(self, det: Detection) -> None:
        self._alarms.append(det.time_s)

    def scored(self, start_s: float, probs: np.ndarray, threshold: float | None = None) -> None:
        """Frame probabilities of a model whose threshold is ``threshold`` (default: this keeper's)."""
        near = np.flatnonzero(np.asarray(probs) >= self.cfg.near_miss * (threshold or self.threshold))
        self._alarms.extend(start_s + (int(i) + 1) * self.hop_s for i in near)

    def flush(self) -> None:
        """End of stream: a snippet still inside its guard time is dropped, not written early."""

    def _decide(self, start_s: float) -> None:
        end_s = start_s + self.cfg.length_s
        if any(start_s - self.cfg.guard_s <= t <= end_s + self.cfg.guard_s for t in self._alarms):
            self.skipped += 1
            return
        i0 = self._history.index(start_s)
        clip = self._history.cut(i0, i0 + int(round(self.cfg.length_s * self.rate_hz)))
        if not len(clip) or float(np.max(np.abs(clip))) < 1e-4:  # digital silence teaches nothing
            self.skipped += 1
            return
        wall = time.time() - (self._history.end_s - start_s)
        stem = _stem(wall, start_s, "snippet")
        fields = {
            "kind": "snippet",
            "keyword": self.keyword,
            "time_s": round(start_s, 6),
            "length_s": round(len(clip) / self.rate_hz, 6),
            "guard_s": self.cfg.guard_s,
            "wall_time": datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds"),
        }
        if self._save(stem, clip, fields):
            self.kept += 1


class Keepers:
    """Several savers behind the one ``saver`` slot of the listener."""

    def __init__(self, *keepers):
        self.keepers = [k for k in keepers if k is not None]

    def __bool__(self) -> bool:
        return bool(self.keepers)

    def feed(self, audio: np.ndarray, start_s: float) -> None:
        for k in self.keepers:
            k.feed(audio, start_s)

    def scored(self, start_s: float, probs: np.ndarray, threshold: float | None = None) -> None:
        for k in self.keepers:
            k.scored(start_s, probs, threshold)

    def detected(self, det: Detection) -> None:
        for k in self.keepers:
            k.detected(det)

    def discontinuity(self) -> None:
        for k in self.keepers:
            k.discontinuity()

    def flush(self) -> None:
        for k in self.keepers:
            k.flush()

    def status(self) -> str:
        """For the status line: what is being kept (say plainly that snippets are recorded)."""
        return "".join(f", {k.kept} room snippet(s) kept" for k in self.keepers if isinstance(k, SnippetKeeper))
