"""The listener's counters: what the STATUS line and the end-of-run summary report.

One :class:`Stats` is shared by the pieces of the listener (:mod:`device.connection` counts
reconnects and what closed sources lost, :mod:`device.audiopath` counts steps, drops and
detections), so every number has one home.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from device.decision import Detection


@dataclass
class Stats:
    """Counters for the STATUS line and the end-of-run summary."""

    steps: int = 0
    skipped_steps: int = 0
    detections: int = 0
    dropped_s: float = 0.0
    stale_drops: int = 0
    resets: int = 0
    reconnects: int = 0
    audio_s: float = 0.0
    last: Detection | None = None
    last_wall: float = 0.0
    overflows: int = 0
    _queue_dropped_s: float = field(default=0.0, repr=False)
