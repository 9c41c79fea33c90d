"""`python -m train.label FOLDER` (what `make label` runs): clear refusals, and a real start/stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.label.label_helpers import http, make_folder
from tests.terminal import sigint_default

REPO = Path(__file__).resolve().parents[2]


def label_cli(*args: str, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run(
        [sys.executable, "-m", "train.label", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


def test_a_folder_without_audio_is_one_clear_line(tmp_path):
    (tmp_path / "notes.txt").write_text("no audio here")
    result = label_cli(str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip().count("\n") == 0 and "no audio files" in result.stderr
    assert "make record" in result.stderr and "Traceback" not in result.stderr


def test_a_missing_folder_is_one_clear_line(tmp_path):
    result = label_cli(str(tmp_path / "nope"))
    assert result.returncode == 1 and "does not exist yet" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "file.wav").write_text("")
    result = label_cli(str(tmp_path / "file.wav"))
    assert result.returncode == 1 and "is not a folder" in result.stderr


def test_serves_on_loopback_and_stops_cleanly_on_ctrl_c(tmp_path):
    make_folder(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "train.label", str(tmp_path), "--port", "0"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    try:
        line = proc.stdout.readline()
        assert "5 audio files" in line and "http://127.0.0.1:" in line, line
        url = line.split("open ")[1].split()[0].rstrip("/")
        status, body, _ = http("GET", url + "/api/items")
        assert status == 200 and len(json.loads(body)["items"]) == 5
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0 and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
