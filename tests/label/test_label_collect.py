"""`make collect` (deploy/collect.sh): fetch saved detections over real ssh + rsync on loopback,
adding files only, never touching local labels."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from deploy.testbed.ssh import SSHD, SshTarget, free_port, loopback_sshd

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pi(tmp_path_factory):
    """sshd on 127.0.0.1 (key only) reached as ``<this user>@pitest`` through a throwaway ssh_config."""
    if not SSHD.exists() or shutil.which("rsync") is None:
        pytest.fail("sshd/rsync missing: run scripts/setup.sh test (openssh-server, rsync)")
    with loopback_sshd(tmp_path_factory.mktemp("sshd")) as target:
        yield target


def saved_detection(folder: Path, stamp: str, keyword: str) -> Path:
    """A WAV + JSON pair as device/clipsaver.py writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    wav = folder / f"{stamp}_{keyword}.wav"
    wav.write_bytes(b"RIFF" + stamp.encode())
    wav.with_suffix(".json").write_text(json.dumps({"version": 1, "keyword": keyword, "score": 0.9}))
    return wav


def collect(pi: SshTarget, tmp_path: Path, *hosts: str, **env: str) -> subprocess.CompletedProcess:
    full = dict(
        os.environ,
        SSH_CONFIG=str(pi.config),
        KEYWORD="computer",
        OUT=str(tmp_path / "field"),
        WW_LOG_DIR=str(tmp_path / "logs"),
        **env,
    )
    return subprocess.run(
        ["deploy/collect.sh", *hosts], cwd=REPO, env=full, capture_output=True, text=True, timeout=120
    )


def test_fetches_new_clips_and_never_touches_local_ones(pi, tmp_path):
    remote = tmp_path / "pi-detections"
    first = saved_detection(remote, "20261124T100000000Z", "computer")
    second = saved_detection(remote, "20261124T110000000Z", "computer")
    saved_detection(remote, "20261124T120000000Z", "hey_robot")  # another keyword
    (remote / ".20261124T130000000Z_computer.wav.abc.tmp").write_bytes(b"half")  # being written
    (remote / f"{second.name}.label.json").write_text("{}")  # never comes back
    local = tmp_path / "field" / "pitest"
    local.mkdir(parents=True)
    (local / first.name).write_bytes(b"my trimmed copy")
    label = local / f"{first.name}.label.json"
    label.write_text('{"version": 1, "kind": "false_accept", "keyword_spans": [], "updated": "x"}')

    on_pi = sorted(p.name for p in remote.iterdir())
    result = collect(pi, tmp_path, "pitest", REMOTE_DIR=str(remote))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetched 1 new clip(s)" in result.stdout
    assert sorted(p.name for p in local.iterdir()) == sorted(
        [first.name, first.with_suffix(".json").name, label.name, second.name, second.with_suffix(".json").name]
    )
    assert (local / first.name).read_bytes() == b"my trimmed copy"
    assert label.read_text().startswith('{"version": 1, "kind": "false_accept"')
    assert (local / second.name).read_bytes() == second.read_bytes()
    assert sorted(p.name for p in remote.iterdir()) == on_pi  # nothing removed on the Pi

    again = collect(pi, tmp_path, "pitest", REMOTE_DIR=str(remote))
    assert again.returncode == 0 and "fetched 0 new clip(s)" in again.stdout


def test_user_at_host_lands_in_the_machine_folder_and_dry_run_copies_nothing(pi, tmp_path):
    remote = tmp_path / "pi-detections"
    saved_detection(remote, "20261124T100000000Z", "computer")
    user = os.environ.get("USER") or "root"
    dry = collect(pi, tmp_path, f"{user}@pitest", REMOTE_DIR=str(remote), DRY_RUN="1")
    assert dry.returncode == 0 and "would fetch up to 1" in dry.stdout
    assert not (tmp_path / "field").exists()
    real = collect(pi, tmp_path, f"{user}@pitest", REMOTE_DIR=str(remote))
    assert real.returncode == 0, real.stdout + real.stderr
    assert (tmp_path / "field" / "pitest" / "20261124T100000000Z_computer.wav").exists()


def test_missing_dir_and_other_keywords_are_said_plainly(pi, tmp_path):
    result = collect(pi, tmp_path, "pitest", REMOTE_DIR=str(tmp_path / "nothing-here"))
    assert result.returncode == 0 and "does not exist" in result.stdout
    remote = tmp_path / "pi-detections"
    saved_detection(remote, "20261124T100000000Z", "hey_robot")
    result = collect(pi, tmp_path, "pitest", REMOTE_DIR=str(remote))
    assert result.returncode == 0 and "no 'computer' clips" in result.stdout and "1 clip(s) of other" in result.stdout


def test_bad_and_unreachable_hosts_fail_clearly(pi, tmp_path):
    result = collect(pi, tmp_path)
    assert result.returncode == 2 and "no HOST given" in result.stderr
    result = collect(pi, tmp_path, "-oProxyCommand=evil")
    assert result.returncode == 2 and "bad HOST" in result.stderr
    config = tmp_path / "ssh_config"
    config.write_text(
        pi.config.read_text()
        .replace("Host pitest", "Host gone")
        .replace(f"Port {pi.config.read_text().split('Port ')[1].split()[0]}", f"Port {free_port()}")
    )
    result = subprocess.run(
        ["deploy/collect.sh", "gone"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, SSH_CONFIG=str(config), WW_LOG_DIR=str(tmp_path / "logs"), OUT=str(tmp_path / "field")),
    )
    assert result.returncode == 1 and "FAILED" in result.stdout


def test_make_collect_never_runs_a_host_string_as_shell(tmp_path):
    marker = tmp_path / "ran"
    result = subprocess.run(
        ["make", "-s", "collect", f"HOST=pi;touch {marker}"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2 and "bad HOST" in result.stderr
    assert not marker.exists()


def test_room_snippets_come_along_into_their_own_folder(pi, tmp_path):
    remote, snippets = tmp_path / "pi-detections", tmp_path / "pi-snippets"
    saved_detection(remote, "20261124T100000000Z", "computer")
    for stamp in ("20261124T100500000Z_t000001000", "20261124T101500000Z_t000601000"):
        saved_detection(snippets, stamp, "snippet")
    (snippets / ".20261124T102000000Z_t000900000_snippet.wav.x.tmp").write_bytes(b"half")
    env = dict(REMOTE_DIR=str(remote), REMOTE_SNIPPETS_DIR=str(snippets), SNIPPETS_OUT=str(tmp_path / "snip"))
    dry = collect(pi, tmp_path, "pitest", DRY_RUN="1", **env)
    assert dry.returncode == 0 and "would fetch up to 2 room snippet(s)" in dry.stdout
    assert not (tmp_path / "snip").exists()
    result = collect(pi, tmp_path, "pitest", **env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fetched 1 new clip(s)" in result.stdout and "2 new room snippet(s)" in result.stdout
    assert sorted(p.name for p in (tmp_path / "snip" / "pitest").iterdir()) == sorted(
        p.name for p in snippets.iterdir() if not p.name.startswith(".")
    )
    again = collect(pi, tmp_path, "pitest", **env)
    assert "0 new room snippet(s)" in again.stdout
    # snippets off on the Pi (no folder): not a word about them
    quiet = collect(pi, tmp_path, "pitest", REMOTE_DIR=str(remote), REMOTE_SNIPPETS_DIR=str(tmp_path / "none"))
    assert quiet.returncode == 0 and "room snippet" not in quiet.stdout
