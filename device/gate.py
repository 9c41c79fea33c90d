"""Optional energy gate: skip model steps while the room stays quiet (saves CPU on a Pi).

The original listener compared each chunk with the ambient noise mean; this one tracks an
adaptive noise floor instead: it follows the level down at once and creeps up slowly
(``floor_rise_db_per_s``), so a steady fan or a quieter night moves it, speech does not.
A step is *loud* when its level is ``margin_db`` above the floor. The gate opens on a loud
step and closes only after ``hold_s`` of quiet steps, so the end of a keyword and the
frames after it (where the model fires) are always run.

Pure logic over float32 chunks; the listener decides what skipping means for model state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GateConfig:
    enabled: bool = False
    """Skip model steps while the input stays near the noise floor (saves CPU; may cost a
    soft first keyword after a long silence)."""
    margin_db: float = 10.0
    """How far above the noise floor a step must be to open the gate (dB)."""
    hold_s: float = 2.0
    """Quiet time after the last loud step before the gate closes again (s)."""
    floor_rise_db_per_s: float = 0.5
    """How fast the noise floor may rise while the level stays above it (dB per s)."""

    def __post_init__(self) -> None:
        if self.margin_db <= 0:
            raise ValueError(f"margin_db must be positive, got {self.margin_db}")
        if self.hold_s < 0 or self.floor_rise_db_per_s <= 0:
            raise ValueError("hold_s must be >= 0 and floor_rise_db_per_s > 0")


def level_db(audio: np.ndarray) -> float:
    """RMS level of float32 audio in dB relative to full scale (-120 for silence)."""
    if audio.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return max(-120.0, 20.0 * np.log10(max(rms, 1e-6)))


class EnergyGate:
    def __init__(self, cfg: GateConfig):
        self.cfg = cfg
        self.floor_db: float | None = None
        self._quiet_s = float("inf")  # closed until the first loud step

    def update(self, audio: np.ndarray, duration_s: float) -> bool:
        """Feed one step of audio (``duration_s`` long); True if the model should run on it."""
        level = level_db(audio)
        if self.floor_db is None or level < self.floor_db:
            self.floor_db = level
        else:
            self.floor_db = min(level, self.floor_db + self.cfg.floor_rise_db_per_s * duration_s)
        if level >= self.floor_db + self.cfg.margin_db:
            self._quiet_s = 0.0
        else:
            self._quiet_s += duration_s
        return self._quiet_s <= self.cfg.hold_s
