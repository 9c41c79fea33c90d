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
"""
from __future__ import annotations

import json
import logging
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from device.decision import Detection
from device.fsutil import atomic_write_text
from device.wavio import write_wav

log = logging.getLogger(__name__)

SIDECAR_VERSION = 1


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


class ClipSaver:
    def __init__(self, cfg: SaveConfig, rate_hz: int, keyword: str, model_version: str = "",
                 threshold: float = 0.0, lag_s: float = 5.0):
        """``lag_s``: how far behind the newest audio a detection may be reported (the
        longest inference step), so its pre-roll is still in the history."""
        self.cfg = cfg
        self.rate_hz = rate_hz
        self.keyword = keyword
        self.model_version = model_version
        self.threshold = threshold
        self.dir = Path(cfg.dir)
        self._keep = int(round((cfg.pre_roll_s + cfg.post_roll_s + lag_s) * rate_hz))
        self._buf = np.zeros(0, np.float32)
        self._end_s = 0.0       # stream time of the end of _buf
        self._pending: list[tuple[Detection, float]] = []  # (detection, wall clock time)
        self.saved = 0

    def discontinuity(self) -> None:
        """The stream jumped (drop, reconnect): write what is pending, start a fresh history."""
        self.flush()
        self._buf = np.zeros(0, np.float32)

    def feed(self, audio: np.ndarray, start_s: float) -> None:
        """Audio the model heard, float32 ``[n]`` starting at stream time ``start_s``."""
        self._buf = np.concatenate([self._buf, audio])[-self._keep:]
        self._end_s = start_s + len(audio) / self.rate_hz
        while self._pending and self._end_s >= self._pending[0][0].time_s + self.cfg.post_roll_s - 1e-9:
            self._write(*self._pending.pop(0))

    def detected(self, det: Detection) -> None:
        self._pending.append((det, time.time()))

    def flush(self) -> None:
        """Write pending detections with whatever post-roll exists (end of stream)."""
        while self._pending:
            self._write(*self._pending.pop(0))

    def _write(self, det: Detection, wall: float) -> None:
        start_s = max(det.time_s - self.cfg.pre_roll_s, self._end_s - len(self._buf) / self.rate_hz)
        end_s = min(det.time_s + self.cfg.post_roll_s, self._end_s)
        i0 = len(self._buf) - int(round((self._end_s - start_s) * self.rate_hz))
        i1 = len(self._buf) - int(round((self._end_s - end_s) * self.rate_hz))
        clip = self._buf[max(0, i0):max(0, i1)]
        stamp = datetime.fromtimestamp(wall, timezone.utc)
        safe_kw = "".join(c if c.isalnum() or c in "-_" else "_" for c in self.keyword) or "keyword"
        # wall time first (the disk cap deletes oldest first by name); the stream time keeps two
        # detections within one millisecond of wall time apart (files fed faster than real time)
        stem = (f"{stamp.strftime('%Y%m%dT%H%M%S')}{stamp.microsecond // 1000:03d}Z"
                f"_t{int(round(det.time_s * 1000)):09d}_{safe_kw}")
        try:
            write_wav(self.dir / f"{stem}.wav", clip, self.rate_hz)
            atomic_write_text(self.dir / f"{stem}.json", json.dumps({
                "version": SIDECAR_VERSION, "keyword": self.keyword, "score": round(det.score, 6),
                "time_s": round(det.time_s, 6), "clip_start_s": round(start_s, 6),
                "detected_at_s": round(det.time_s - start_s, 6),
                "wall_time": stamp.isoformat(timespec="milliseconds"),
                "model_version": self.model_version, "threshold": self.threshold,
                "sample_rate": self.rate_hz, "host": socket.gethostname()}, indent=1) + "\n")
        except OSError as exc:
            # Saving is a convenience: a full or read-only disk must not stop detection.
            log.warning("could not save detection audio in %s: %s", self.dir, exc.strerror or exc)
            return
        self.saved += 1
        self._enforce_cap()

    def _enforce_cap(self) -> None:
        # Another process (`make collect`, a reviewer) may delete files while this runs: a file that
        # is gone counts as 0 bytes, never as an error in the detection path.
        sizes = {}
        for p in self.dir.iterdir():
            if p.suffix in (".wav", ".json") and not p.name.startswith("."):
                try:
                    sizes[p] = p.stat().st_size if p.is_file() else None
                except OSError:
                    continue
        files = [p for p, size in sizes.items() if size is not None]
        total = sum(sizes[p] for p in files)
        cap = self.cfg.max_mb * 1e6
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
            log.info("disk cap %.0f MB: deleted saved detection %s", self.cfg.max_mb, stem)
