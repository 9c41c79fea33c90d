"""The release builder: what goes to the Pi, and an id that only changes with the content."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from deploy import release
from tests.deploy.deploy_helpers import REPO, UNIT


@pytest.fixture
def model(tmp_path) -> Path:
    # The builder ships the file as it is (the daemon validates models); any bytes will do here.
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not really onnx, but the builder does not care" * 10)
    return path


def build(model: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "deploy.release", "--model", str(model), "--out", str(out), *extra],
        capture_output=True,
        text=True,
        cwd=REPO,
    )


def test_release_has_the_right_files(model, tmp_path):
    proc = build(model, tmp_path / "out", "--keyword", "tone")
    assert proc.returncode == 0, proc.stderr
    rel = Path(proc.stdout.strip())
    assert rel.parent == tmp_path / "out"
    assert (rel / "model.onnx").read_bytes() == model.read_bytes()
    assert (rel / "wakeword.service").read_text() == UNIT.read_text()
    assert (rel / "wakeword-wyoming.service").read_text() == (UNIT.parent / "wakeword-wyoming.service").read_text()
    for script in ("bin/wakeword", "pi/install.sh", "pi/platform.sh", "pi/undeploy.sh"):
        assert (rel / script).stat().st_mode & 0o111, script
    shipped = {p.relative_to(rel / "lib/device").as_posix() for p in (rel / "lib/device").rglob("*.py")}
    source = {p.relative_to(REPO / "device").as_posix() for p in (REPO / "device").rglob("*.py")}
    assert shipped == source and "cli.py" in shipped
    assert not list(rel.rglob("__pycache__"))
    # The default config is the commented example, naming the current release's model.
    config = tomllib.loads((rel / "config.toml").read_text())
    assert config["model"] == "/opt/wakeword/current/model.onnx"
    # The Python packages travel as the committed locks (exact versions, wheel hashes), nothing looser.
    assert not (rel / "requirements.txt").exists()
    for name in ("requirements.lock", "requirements-gpio.lock"):
        assert (rel / name).read_bytes() == (REPO / "deploy" / name).read_bytes(), name
    reqs = (rel / "requirements.lock").read_text().lower()
    assert "onnxruntime==" in reqs and "numpy==" in reqs and "wyoming==" in reqs and "paho-mqtt==" in reqs
    assert "pyaudio" not in reqs  # Debian's python3-pyaudio: no compiler needed on the Pi
    assert "torch" not in reqs


def test_manifest_covers_every_file_and_names_the_release(model, tmp_path):
    rel = Path(build(model, tmp_path / "out").stdout.strip())
    check = subprocess.run(["sha256sum", "--strict", "-c", "MANIFEST.sha256"], cwd=rel, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    listed = {line.split("  ", 1)[1] for line in (rel / "MANIFEST.sha256").read_text().splitlines()}
    files = {p.relative_to(rel).as_posix() for p in rel.rglob("*") if p.is_file()}
    assert files - listed == {"MANIFEST.sha256", "RELEASE"}
    assert {"requirements.lock", "requirements-gpio.lock"} <= listed  # a new lock is a new release
    assert rel.name == hashlib.sha256((rel / "MANIFEST.sha256").read_bytes()).hexdigest()[:12]


def test_release_id_follows_the_content(model, tmp_path):
    first = build(model, tmp_path / "out").stdout.strip()
    again = build(model, tmp_path / "out").stdout.strip()
    assert first == again
    other_model = tmp_path / "other.onnx"
    other_model.write_bytes(model.read_bytes() + b"!")
    assert build(other_model, tmp_path / "out").stdout.strip() != first
    config = tmp_path / "my.toml"
    config.write_text('model = "/opt/wakeword/current/model.onnx"\n[gpio]\npin = 27\n')
    with_config = Path(build(model, tmp_path / "out", "--config", str(config)).stdout.strip())
    assert with_config.name != Path(first).name
    assert (with_config / "config.toml").read_text() == config.read_text()


def test_missing_model_is_one_clear_line(tmp_path):
    proc = build(tmp_path / "nope.onnx", tmp_path / "out")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "make train export" in proc.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_launcher_runs_the_release_code(model, tmp_path):
    """bin/wakeword finds the release's own lib/ on the venv's python (a bare venv here, so
    the command can only come from lib/)."""
    rel = Path(build(model, tmp_path / "out").stdout.strip())
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    (rel / "venv").symlink_to(tmp_path / "venv")
    proc = subprocess.run(
        [str(rel / "bin/wakeword"), "--help"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}
    )
    assert proc.returncode == 0, proc.stderr
    assert "listen" in proc.stdout and "devices" in proc.stdout


def test_requirements_come_from_the_device_extra():
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["device"]
    reqs = release.device_requirements(REPO / "pyproject.toml")
    assert reqs == [r for r in extra if not r.lower().startswith("pyaudio")]


def test_extra_keyword_models_ship_under_models_with_their_keywords_table(model, tmp_path):
    jarvis = tmp_path / "build" / "jarvis" / "model.onnx"
    jarvis.parent.mkdir(parents=True)
    jarvis.write_bytes(b"jarvis" * 50)
    other = tmp_path / "hey robot.onnx"
    other.write_bytes(b"robot" * 50)
    proc = build(model, tmp_path / "out", "--extra-model", str(jarvis), "--extra-model", str(other))
    assert proc.returncode == 0, proc.stderr
    rel = Path(proc.stdout.strip())
    assert (rel / "models" / "1-jarvis.onnx").read_bytes() == jarvis.read_bytes()
    assert (rel / "models" / "2-hey_robot.onnx").read_bytes() == other.read_bytes()
    assert "models/1-jarvis.onnx" in (rel / "MANIFEST.sha256").read_text()
    from device import config

    cfg = config.load(rel / "config.toml")  # the daemon's own loader takes the shipped config
    assert [k.model for k in cfg.keywords] == [
        f"{release.PI_INSTALL_ROOT}/current/models/1-jarvis.onnx",
        f"{release.PI_INSTALL_ROOT}/current/models/2-hey_robot.onnx",
    ]
    assert cfg.model == release.MODEL_ON_PI
    alone = Path(build(model, tmp_path / "out").stdout.strip())
    assert alone != rel and not (alone / "models").exists() and config.load(alone / "config.toml").keywords == ()


def test_bad_extra_models_are_one_clear_line(model, tmp_path):
    proc = build(model, tmp_path / "out", "--extra-model", str(tmp_path / "gone.onnx"))
    assert proc.returncode == 1 and proc.stderr.strip().startswith("release: extra model") and "MODELS=" in proc.stderr
    many = [a for i in range(8) for a in ("--extra-model", str(model))]
    proc = build(model, tmp_path / "out", *many)
    assert proc.returncode == 1 and "at most 8 keywords" in proc.stderr
