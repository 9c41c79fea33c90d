"""train.workpool: Ctrl-C while spawned workers write files leaves only whole files."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.terminal import ctrl_c, start_job
from train import workpool

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import sys
from train import workpool
from tests.data.slowwriter import write_slowly
folder = sys.argv[1]
try:
    for _ in workpool.imap(write_slowly, [(folder, k) for k in range(200)], 2, "writing", 200):
        pass
except KeyboardInterrupt:
    print("interrupted")
    sys.exit(130)
"""


def test_ctrl_c_stops_the_workers_and_leaves_no_temp_file(tmp_path):
    proc = start_job([sys.executable, "-c", SCRIPT, str(tmp_path)], REPO)
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("out-*.bin"))) < 4:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[0]
        time.sleep(0.01)
    ctrl_c(proc)
    out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 130 and "interrupted" in out, out
    files = sorted(p.name for p in tmp_path.iterdir())
    assert not [f for f in files if f.endswith(".tmp")], files  # workers removed their temp files
    assert 4 <= len(files) < 200
    assert all((tmp_path / f).stat().st_size == 20000 for f in files)  # and every file is whole


def test_one_worker_runs_in_process_in_order(tmp_path):
    from tests.data.slowwriter import write_slowly

    got = list(workpool.imap(write_slowly, [(str(tmp_path), k) for k in range(3)], 1, "t", 3))
    assert got == [0, 1, 2]
