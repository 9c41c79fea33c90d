"""A task for tests/data/test_workpool.py: writes one file atomically, slowly (importable by
spawned workers, and light: no torch)."""

from __future__ import annotations

import time
from pathlib import Path

from device.fsutil import atomic_path


def write_slowly(task: tuple[str, int]) -> int:
    folder, k = task
    with atomic_path(Path(folder) / f"out-{k:03d}.bin") as tmp:
        with open(tmp, "wb") as f:
            for _ in range(20):
                f.write(bytes([k % 256]) * 1000)
                f.flush()
                time.sleep(0.01)
    return k
