"""`make deploy DRY_RUN=1` names the steps without contacting anyone; bad HOST values are one
clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import make


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"model bytes")
    return path


def test_dry_run_names_every_step_for_every_host(model, tmp_path):
    # An ssh config that does not exist: any ssh attempt would fail the run.
    proc = make(
        "deploy",
        "HOST=pi1 pi@pi2",
        "DRY_RUN=1",
        f"MODEL={model}",
        f"SSH_CONFIG={tmp_path / 'no-such-ssh-config'}",
        env={"WW_LOG_DIR": str(tmp_path / "logs")},
    )
    assert proc.returncode == 0, proc.output
    out = proc.stdout
    assert "DRY_RUN: nothing is contacted or changed" in out
    for host in ("pi1", "pi@pi2"):
        assert f"== {host}" in out
        assert "rsync " in out and f"{host}:~/.cache/wakeword-deploy/release/" in out
        assert f"ssh {host}: sudo sh ~/.cache/wakeword-deploy/release/pi/install.sh" in out
    for step in (
        "check a supported Pi (64-bit OS, Python 3.11+)",
        "check the Pi is supported: a 64-bit OS",
        "verify the upload against MANIFEST.sha256",
        "apt-get install what is missing",
        "create the system user wakeword",
        "--system-site-packages",
        "pip install",
        "/opt/wakeword/releases/",
        "only if there is none",
        "/etc/systemd/system/wakeword.service",
        "unchanged",
        "systemctl enable + restart wakeword",
        "wait until active",
        "back at the previous release",
    ):
        assert step in out, step
    assert not (tmp_path / "logs").exists()  # nothing ran per host


def test_no_host_is_one_clear_line(model):
    proc = make("deploy", f"MODEL={model}")
    assert proc.returncode != 0
    assert "no HOST given: make <target> HOST=pi" in proc.stderr


@pytest.mark.parametrize("host", ["-oProxyCommand=sh", "a b$", "pi`id`", "pi/x"])
def test_hosts_that_are_not_hosts_are_refused(model, host):
    proc = make("deploy", f"HOST={host}", "DRY_RUN=1", f"MODEL={model}")
    assert proc.returncode != 0
    assert "bad HOST" in proc.stderr


@pytest.mark.parametrize("target", ["deploy", "status", "logs", "undeploy"])
def test_host_never_reaches_a_shell(model, tmp_path, target):
    # On a recipe line, HOST="pi;touch x" would run touch: HOST must travel in the environment.
    marker = tmp_path / "ran"
    proc = make(target, f"HOST=pi;touch {marker}", "DRY_RUN=1", f"MODEL={model}")
    assert proc.returncode != 0 and "bad HOST" in proc.stderr
    assert not marker.exists()


def test_missing_model_says_how_to_make_one(tmp_path):
    proc = make("deploy", "HOST=pi", "DRY_RUN=1", f"MODEL={tmp_path / 'none.onnx'}")
    assert proc.returncode != 0
    assert "make train export" in proc.stderr and "MODEL=" in proc.stderr


def test_undeploy_dry_run(model):
    proc = make("undeploy", "HOST=pi1 pi2", "DRY_RUN=1", "PURGE=1")
    assert proc.returncode == 0, proc.output
    assert "ssh pi1: sudo sh /opt/wakeword/current/pi/undeploy.sh --purge" in proc.stdout
    assert "ssh pi2:" in proc.stdout


def test_service_chooses_the_units_and_anything_else_is_refused(model, tmp_path):
    def run(*extra):
        return make(
            "deploy", "HOST=pi1", "DRY_RUN=1", f"MODEL={model}", *extra, env={"WW_LOG_DIR": str(tmp_path / "logs")}
        )

    proc = run("SERVICE=wyoming")
    assert proc.returncode == 0, proc.output
    assert "systemctl enable + restart wakeword-wyoming" in proc.stdout
    proc = run("SERVICE=both")
    assert proc.returncode == 0 and "restart wakeword wakeword-wyoming" in proc.stdout, proc.output
    marker = tmp_path / "ran"
    for bad in ("wyoming;touch " + str(marker), "all", "--plan"):
        proc = run(f"SERVICE={bad}")
        assert proc.returncode == 2 and "SERVICE must be listen, wyoming or both" in proc.stderr, proc.output
    assert not marker.exists()


def test_make_variables_are_arguments_never_shell(tmp_path):
    """Quotes, `;` and `$(...)` in KEYWORD / SET / CONFIG / MODEL reach the programs as text."""
    import json
    import os
    import subprocess

    repo = Path(__file__).resolve().parents[2]
    marker = tmp_path / "ran"
    evil = f'x"; touch {marker}; echo "'
    env = {
        **os.environ,
        "KEYWORD": evil,
        "SET": f"train.lr=1 a;touch {marker} $(touch {marker})",
        "CONFIG": "c.toml;touch`id`",
        "QUICK": "1",
        "NPROC": "1",
    }
    env.pop("BUILD", None)
    out = subprocess.run(
        ["scripts/stage.sh", "tests.argv_echo", "--extra"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == [
        "--keyword",
        evil,
        "--build",
        f"build/{evil}",
        "--quick",
        "--config",
        "c.toml;touch`id`",
        "--set",
        "train.lr=1",
        "--set",
        "a;touch",
        "--set",
        str(marker),
        "--set",
        "$(touch",
        "--set",
        f"{marker})",
        "--extra",
    ]
    bad = subprocess.run(
        ["scripts/stage.sh", "tests.argv_echo"],
        cwd=repo,
        env={**env, "NPROC": "2;id"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "NPROC must be a whole number" in bad.stderr
    proc = make("deploy", "HOST=pi", "DRY_RUN=1", f"MODEL={evil}", f"KEYWORD={evil}")
    assert proc.returncode != 0 and f"model {evil} not found" in proc.stderr, proc.output
    assert not marker.exists()


def test_models_are_paths_never_shell(model, tmp_path):
    marker = tmp_path / "ran"
    evil = f'x"; touch {marker}; echo "* $(touch {marker})'
    proc = make("deploy", "HOST=pi", "DRY_RUN=1", f"MODEL={model}", f"MODELS={evil}")
    assert proc.returncode != 0 and 'extra model x"; not found' in proc.output, proc.output
    assert not marker.exists()


def test_hosts_on_several_lines_are_all_deployed(model, tmp_path):
    proc = make("deploy", "HOST=pi1\npi2", "DRY_RUN=1", f"MODEL={model}", env={"WW_LOG_DIR": str(tmp_path / "logs")})
    assert proc.returncode == 0, proc.output
    assert "== pi1" in proc.stdout and "== pi2" in proc.stdout
