"""The Pi's lock files (deploy/requirements*.lock, `make lock`): they cover the device extra, pin
every package with hashes, carry what was tested, travel in the release, and install.sh installs
them in pip's hash-checking mode. Offline: `make lock` itself needs PyPI (its pure parts are
tested here on made-up wheels)."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from deploy import lock, release
from device import lockfile
from tests.deploy.deploy_helpers import REPO, fake_programs, make, run_install_sh

LOCK = REPO / "deploy" / "requirements.lock"
GPIO_LOCK = REPO / "deploy" / "requirements-gpio.lock"
INSTALL_SH = REPO / "deploy" / "pi" / "install.sh"


def pins(path: Path) -> dict[str, lockfile.Pin]:
    return {p.name: p for p in lockfile.parse(path.read_text())}


def input_line(path: Path) -> list[str]:
    line = next(x for x in path.read_text().splitlines() if x.startswith("# input:"))
    return json.loads(line[len("# input:") :])


# -- what the lock holds ---------------------------------------------------------------


def test_the_lock_covers_every_device_requirement_the_pi_takes_from_pip():
    """Fails when pyproject's device extra changes without `make lock`."""
    wanted = release.device_requirements(REPO / "pyproject.toml")
    stale = "pyproject.toml's device extra changed since deploy/requirements.lock was made: run `make lock`"
    assert input_line(LOCK) == wanted, stale
    locked = pins(LOCK)
    for req in map(Requirement, wanted):
        pin = locked.get(canonicalize_name(req.name))
        assert pin is not None, f"{req.name} is not in the lock: run `make lock`"
        assert req.specifier.contains(pin.version, prereleases=True), f"{req} but the lock has {pin.version}"
    for name in release.DEBIAN_PROVIDED:  # those come from Debian, never from pip
        assert name not in locked
    assert input_line(GPIO_LOCK) == release.GPIO_REQUIREMENTS
    assert "rpi-lgpio" in pins(GPIO_LOCK) and "lgpio" in pins(GPIO_LOCK)
    assert not set(pins(GPIO_LOCK)) & set(locked)  # one version of a package, in one file


@pytest.mark.parametrize("path", [LOCK, GPIO_LOCK], ids=lambda p: p.name)
def test_every_entry_is_pinned_exactly_with_sha256_hashes(path):
    entries = 0
    logical = re.sub(r"\\\n", " ", path.read_text())
    for line in logical.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        entries += 1
        assert re.match(r"^[a-z0-9][a-z0-9.-]*==[^\s;]+( ; [^-]+)? +--hash=sha256:[0-9a-f]{64}", line), line
        assert all(re.fullmatch(r"--hash=sha256:[0-9a-f]{64}", h) for h in re.findall(r"--hash=\S+", line)), line
    assert entries == len(lockfile.parse(path.read_text())) > 0


def test_the_locks_have_wheels_for_the_pis_the_project_supports():
    base = lockfile.targets(LOCK.read_text())
    # Raspberry Pi OS Bookworm and trixie (64-bit), and amd64 Debian 12 (the nspawn deploy tests).
    assert {"cp311-aarch64", "cp313-aarch64", "cp311-x86_64"} <= set(base)
    assert "cp311-aarch64" in lockfile.targets(GPIO_LOCK.read_text())  # the emulated Pi of make e2e-pi
    assert set(lockfile.targets(GPIO_LOCK.read_text())) <= set(base)
    assert [t.tag for t in lock.TARGETS] == base  # every target make lock knows, or make lock failed


def test_the_lock_is_closed_under_dependencies():
    """Every dependency of a locked package (as this venv's copy of it declares them, on each target)
    is locked too: pip --require-hashes on the Pi would stop at the first one missing."""
    locked = pins(LOCK) | pins(GPIO_LOCK)
    checked = 0
    for name, pin in locked.items():
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        if dist.version != pin.version:
            continue
        checked += 1
        for req in map(Requirement, dist.requires or []):
            for target in lock.TARGETS:
                if req.marker is None or req.marker.evaluate(target.marker_env()):
                    assert canonicalize_name(req.name) in locked, f"{name} needs {req} on {target.tag}"
    assert checked >= 5  # onnxruntime, numpy, soxr, wyoming, paho-mqtt... are in this venv


def test_the_lock_pins_what_this_venv_ran_the_tests_with():
    """The Pi runs what was tested: the lock holds this venv's versions (onnxruntime and numpy are
    what the export's parity check ran). A venv that moved on is said in the skip reason (a fresh
    machine may well have newer ones): `make lock` re-pins to it."""
    moved = []
    for name, pin in (pins(LOCK) | pins(GPIO_LOCK)).items():
        have = lockfile.installed_version(name)
        if have is not None and have != pin.version:
            moved.append(f"{name} {have} (lock: {pin.version})")
    assert lockfile.installed_version("onnxruntime") is not None, "the test venv has no onnxruntime"
    if moved:
        pytest.skip(
            "this venv runs other versions than deploy/requirements.lock pins, so the Pi would not run "
            f"what these tests ran: {'; '.join(moved)}: run `make lock`"
        )


# -- make lock's own pieces (no network) -----------------------------------------------


def wheel(name: str, version: str, sha: str, *requires: str) -> lock.Wheel:
    return lock.Wheel(name, version, sha * 64, [Requirement(r) for r in requires])


def test_render_writes_what_pip_and_the_pi_read():
    a, b = lock.TARGETS[0].tag, lock.TARGETS[1].tag
    group = lock.Group(
        "device",
        ["onnxruntime>=1.16"],
        {
            a: {
                "onnxruntime": wheel("onnxruntime", "1.32.0", "a", "numpy>=1.21; python_version < '3.13'"),
                "numpy": wheel("numpy", "2.4.6", "b"),
            },
            b: {"onnxruntime": wheel("onnxruntime", "1.32.0", "c")},
        },
        {"onnxruntime": {"input"}, "numpy": {"onnxruntime"}},
        {},
    )
    text = lock.render(group)
    assert text == lock.render(group)  # the same resolution, the same bytes
    assert f"# targets: {a} {b}" in text and '# input: ["onnxruntime>=1.16"]' in text
    parsed = {p.name: p for p in lockfile.parse(text)}
    assert parsed["onnxruntime"].version == "1.32.0" and parsed["onnxruntime"].hashes == ("a" * 64, "c" * 64)
    assert parsed["numpy"].marker == lock.marker_for([a])  # only the target that needs it
    assert 'python_version == "3.11"' in parsed["numpy"].marker and not parsed["onnxruntime"].marker
    assert lockfile.targets(text) == [a, b]


def test_a_target_left_out_is_said_in_the_file():
    a = lock.TARGETS[0].tag
    why = "PyPI has no wheel of lgpio==0.2.2.0 for cp313-aarch64"
    group = lock.Group(
        "gpio",
        ["rpi-lgpio"],
        {a: {"rpi-lgpio": wheel("rpi-lgpio", "0.6", "d")}},
        {"rpi-lgpio": {"input"}},
        {"cp313-aarch64": why},
    )
    text = lock.render(group)
    assert lockfile.targets(text) == [a]
    assert "# not cp313-aarch64 (Raspberry Pi OS trixie, 64-bit): PyPI has no wheel of lgpio==0.2.2.0" in text


def test_make_lock_asks_pypi_only():
    env = dict(os.environ, PIP_FIND_LINKS="/opt/wheels", PIP_INDEX_URL="file:///mirror", PIP_CERT="/ca.crt")
    old = os.environ.copy()
    os.environ.clear()
    os.environ.update(env)
    try:
        clean = lock.pip_env()
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert "PIP_FIND_LINKS" not in clean and "PIP_INDEX_URL" not in clean
    assert clean["PIP_CONFIG_FILE"] == os.devnull and clean["PIP_CERT"] == "/ca.crt"
    args = lock.TARGETS[0].pip_args()
    assert "--only-binary=:all:" in args and "manylinux_2_36_aarch64" in args and "manylinux_2_17_aarch64" in args
    assert "manylinux_2_37_aarch64" not in args  # Bookworm's glibc is 2.36
    assert lock.INDEX_URL == "https://pypi.org/simple"


# -- the release carries it, refuses a stale one ---------------------------------------


@pytest.fixture
def model(tmp_path) -> Path:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"model bytes" * 10)
    return path


def test_the_release_carries_the_locks_and_its_id_follows_them(model, tmp_path):
    locks = tmp_path / "locks"
    locks.mkdir()
    for p in (LOCK, GPIO_LOCK):
        shutil.copy(p, locks / p.name)
    first = release.build(model, tmp_path / "out", lock_dir=locks)
    assert (first.path / "requirements.lock").read_bytes() == LOCK.read_bytes()
    assert (first.path / "requirements-gpio.lock").read_bytes() == GPIO_LOCK.read_bytes()
    manifest = (first.path / "MANIFEST.sha256").read_text()
    assert re.search(r"^[0-9a-f]{64}  requirements\.lock$", manifest, re.M)
    # Another wheel hash is another release (and, on the Pi, another venv).
    text = (locks / "requirements.lock").read_text()
    first_hash = re.search(r"--hash=sha256:([0-9a-f]{64})", text).group(1)
    (locks / "requirements.lock").write_text(text.replace(first_hash, "0" * 64, 1))
    assert release.build(model, tmp_path / "out", lock_dir=locks).id != first.id


def test_a_stale_or_missing_lock_stops_the_release_in_one_line(model, tmp_path):
    locks = tmp_path / "locks"
    locks.mkdir()
    shutil.copy(GPIO_LOCK, locks / GPIO_LOCK.name)
    with pytest.raises(release.ReleaseError, match=r"requirements\.lock is missing: run `make lock`"):
        release.build(model, tmp_path / "out", lock_dir=locks)
    # Someone added a dependency to the device extra and did not re-lock.
    text = LOCK.read_text()
    old = input_line(LOCK)
    (locks / "requirements.lock").write_text(text.replace(json.dumps(old), json.dumps(old[:-1])))
    with pytest.raises(release.ReleaseError, match=r"pyproject.toml's device extra changed\): run `make lock`"):
        release.build(model, tmp_path / "out", lock_dir=locks)
    (locks / "requirements.lock").write_text(re.sub(r"(?m)^ *--hash=.*\n", "", text.replace(" \\\n", "\n")))
    with pytest.raises(release.ReleaseError, match="is not what `make lock` writes"):
        release.build(model, tmp_path / "out", lock_dir=locks)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# -- install.sh installs it in hash-checking mode --------------------------------------


def test_install_sh_installs_the_lock_with_require_hashes_and_wheels_only():
    text = INSTALL_SH.read_text()
    pip_lines = re.findall(r'"\$venv/bin/pip" install[^\n]*\\\n[^\n]*', text)
    assert len(pip_lines) == 1, pip_lines
    assert "--require-hashes" in pip_lines[0] and "--only-binary=:all:" in pip_lines[0]
    assert '-r "$src/requirements.lock"' in text and '-r "$gpio_lock"' in text
    assert "requirements.txt" not in text and "--prefer-binary" not in text
    # The venv is keyed by the lock(s) and the Python.
    assert re.search(
        r'venv_id=\$\( \{ cat "\$src/requirements.lock"; \[ -z "\$gpio_lock" \] \|\| cat "\$gpio_lock"; '
        r'echo "\$py_version"; \}',
        text,
    )


def test_the_plan_names_the_pinned_versions(model, tmp_path):
    rel = release.build(model, tmp_path / "out")
    proc = subprocess.run(
        ["sh", str(rel.path / "pi" / "install.sh"), "--plan"], capture_output=True, text=True, timeout=30
    )
    assert proc.returncode == 0, proc.stderr
    assert "pip install --require-hashes --only-binary=:all: -r requirements.lock" in proc.stdout
    for name, pin in pins(LOCK).items():
        assert f"{name}=={pin.version}" in proc.stdout
    assert "rpi-lgpio==" in proc.stdout


# -- a Pi the lock has no wheels for: one line, before anything is installed -----------


def fake_machine(bindir: Path, python: str, machine: str) -> Path:
    """dpkg, uname and a python3 answering platform.sh's two questions for a 64-bit Pi with ``python``."""
    tag = f"cp{python.replace('.', '')}-{machine}"
    programs = {
        "uname": f"echo {machine}",
        "dpkg": '[ "$1" = --print-architecture ] && echo arm64',
        "python3": f'case "$2" in *platform*) echo "{python} {tag}" ;; *) echo {python} ;; esac',
    }
    return fake_programs(bindir, programs)


def lock_problem(bindir: Path, targets: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["/bin/sh", "-c", '. "$1"; ww_lock_problem "$2"', "sh", str(REPO / "deploy" / "pi" / "platform.sh"), targets],
        env={"PATH": f"{bindir}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_lock_problem_is_silent_for_a_covered_pi_and_one_line_otherwise(tmp_path):
    targets = "cp311-aarch64 cp313-aarch64"
    assert lock_problem(fake_machine(tmp_path / "a", "3.13", "aarch64"), targets).returncode == 0
    proc = lock_problem(fake_machine(tmp_path / "b", "3.12", "aarch64"), targets)
    assert proc.returncode == 1
    assert proc.stdout == (
        "the lock of the Python packages has no wheels for Python 3.12 on aarch64 "
        "(cp312-aarch64; it has cp311-aarch64 cp313-aarch64): add it to TARGETS in "
        "deploy/lock.py and run make lock\n"
    )


def test_install_sh_stops_first_for_a_python_the_lock_has_no_wheels_for(tmp_path, model):
    rel = release.build(model, tmp_path / "out")
    bindir = fake_machine(tmp_path / "bin", "3.12", "aarch64")
    proc = run_install_sh(rel.path, bindir, tmp_path / "apt-get.calls")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "RESULT FAILED: unsupported Pi: the lock of the Python packages has no wheels for Python 3.12 on aarch64 "
        f"(cp312-aarch64; it has {' '.join(lockfile.targets(LOCK.read_text()))}): add it to TARGETS in "
        "deploy/lock.py and run make lock"
    ]
    assert not (tmp_path / "apt-get.calls").exists()


def test_make_deploy_checks_the_lock_before_uploading(tmp_path, model):
    """The preflight (one ssh call, before rsync) runs the same check with the release's targets.
    (Over real ssh the check meets this machine's own python3: root's ~/.bashrc puts it first on
    PATH, so a fake Python 3.12 cannot be shown to a loopback session; install.sh's test above
    covers the words, the nspawn and emulated-Pi deploys the path.)"""
    text = (REPO / "deploy" / "deploy.sh").read_text()
    preflight = text[text.index("preflight() {") : text.index("deploy_one() {")]
    assert "ww_lock_problem '$targets'" in preflight and preflight.index("ww_lock_problem") < preflight.index("rsync")
    proc = make("deploy", "HOST=pi1", "DRY_RUN=1", f"MODEL={model}", env={"WW_LOG_DIR": str(tmp_path / "logs")})
    assert proc.returncode == 0, proc.output
    assert f"that the lock has wheels for ({' '.join(lockfile.targets(LOCK.read_text()))})" in proc.stdout


def test_the_lock_check_runs_on_the_release_python(tmp_path):
    """install.sh asks `python -m device.lockfile` (the release's lib/) whether a venv runs the lock."""
    ok = tmp_path / "ok.lock"
    name, have = "packaging", importlib.metadata.version("packaging")
    ok.write_text(f"# targets: cp311-aarch64\n{name}=={have} \\\n    --hash=sha256:{'a' * 64}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "device.lockfile", str(ok)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0 and "runs the 1 versions the lock pins" in proc.stdout
    bad = tmp_path / "bad.lock"
    bad.write_text(f"{name}==0.0.1 \\\n    --hash=sha256:{'a' * 64}\nno-such-package==1.0 --hash=sha256:{'b' * 64}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "device.lockfile", str(bad)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [f"  packaging {have} (lock: 0.0.1)", "  no-such-package missing (lock: 1.0)"]
