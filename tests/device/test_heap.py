"""device.heap: freed heap memory goes back to the system (glibc), in a real process."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from device.heap import HeapTrim, limit_arenas
from tests.device.daemon_helpers import REPO

pytestmark = pytest.mark.skipif(not HeapTrim().available, reason="the C library has no malloc_trim (not glibc)")

# A heap like the daemon's after a burst: many blocks, most freed, a few kept in between so the
# arena's top cannot shrink by itself. RssAnon before the trim, after it, and the trim count.
CHILD = """
import json, sys
from device.heap import HeapTrim
def anon():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1])
blocks = [bytearray(b"x" * 4000) for _ in range(20000)]
kept = blocks[::50]
del blocks
before = anon()
trim = HeapTrim(every_s=60.0)
trim.tick(100.0)
after_first = anon()
trim.tick(130.0)  # within the minute: nothing
json.dump({"before": before, "after": after_first, "trims": trim.trims, "kept": len(kept)}, sys.stdout)
"""


def test_a_tick_gives_the_freed_pages_of_a_fragmented_heap_back_and_waits_a_minute_for_the_next():
    out = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    r = json.loads(out.stdout)
    # 80 MB were allocated, 78 MB freed between kept blocks: before the trim the process still holds them
    assert r["before"] - r["after"] > 40_000, r
    assert r["trims"] == 1


def test_arenas_can_be_limited():
    assert limit_arenas(8)  # this test process keeps glibc's own default for its number of cores


def test_steps_of_varying_length_keep_no_memory(tone_model):
    """A live step covers whatever audio arrived (a backlog after a stall is seconds long). With
    onnxruntime's memory arena each new length grew it for good; the daemon's engine runs without
    it (device.engine.session_options); the per-shape memory plans it keeps on hold a few KiB per
    length. `bench.stepmemory` runs the daemon's setting, the arena on too and both off, each in a
    fresh process."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.stepmemory", "--model", str(tone_model), "--rounds", "6"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    kept = {
        line.split("RssAnon kept:")[0].strip(): int(line.split("RssAnon kept:")[1].split("KiB")[0])
        for line in out.stdout.splitlines()
        if "RssAnon kept:" in line
    }
    assert kept["the same with the memory arena on too"] > 5 * 1024, out.stdout  # what it did: ~13 MiB
    assert kept["engine as the daemon loads it"] < 1024, out.stdout  # ~0.1 MiB
    assert kept["the same with the memory plans off too"] < 1024, out.stdout
