"""The release's lock as the Pi reads it (device/lockfile.py), and `wakeword doctor`'s line on
whether the venv runs what it pins."""

from __future__ import annotations

from pathlib import Path

import pytest

from device import lockfile
from device.doctor import Report, check_lock

H = "--hash=sha256:" + "a" * 64
LOCK = f"""# made by make lock
# input: ["numpy>=1.24"]
# targets: cp311-aarch64 cp313-aarch64 {lockfile.this_target()}
numpy==2.4.6 \\
    {H} \\
    --hash=sha256:{"b" * 64}
    # via the input, onnxruntime
Paho_MQTT==2.2.0 {H}
tomli==2.0.1 ; python_version < "3.11" \\
    {H}
"""


def test_parse_reads_names_versions_hashes_and_markers():
    pins = lockfile.parse(LOCK)
    assert [(p.name, p.version, len(p.hashes), p.marker) for p in pins] == [
        ("numpy", "2.4.6", 2, ""),
        ("paho-mqtt", "2.2.0", 1, ""),
        ("tomli", "2.0.1", 1, 'python_version < "3.11"'),
    ]
    assert lockfile.targets(LOCK)[:2] == ["cp311-aarch64", "cp313-aarch64"]


@pytest.mark.parametrize("entry", ["numpy>=2 " + H, "numpy==2.4.6", "numpy==2.4.6 --hash=md5:abc"])
def test_an_entry_that_is_not_pinned_and_hashed_is_refused(entry):
    with pytest.raises(lockfile.LockError, match="not a pinned, hashed requirement"):
        lockfile.parse(entry + "\n")


def test_this_target_names_python_and_machine():
    assert lockfile.this_target("aarch64", (3, 13)) == "cp313-aarch64"


def test_differences_name_each_version_and_missing_package():
    pins = lockfile.parse(LOCK)
    installed = {"numpy": "1.24.2", "paho-mqtt": "2.2.0"}.get
    assert lockfile.differences(pins, installed) == ["numpy 1.24.2 (lock: 2.4.6)"]  # tomli: a marker, not needed
    assert lockfile.differences(pins, {"numpy": "2.4.6"}.get) == ["paho-mqtt missing (lock: 2.2.0)"]
    assert lockfile.differences(pins, {"numpy": "2.4.6"}.get, optional=True) == []


def release_with(tmp_path: Path, lock: str, gpio: str | None = None) -> Path:
    rel = tmp_path / "release"
    rel.mkdir()
    (rel / "MANIFEST.sha256").write_text("")
    (rel / lockfile.LOCK_NAME).write_text(lock)
    if gpio is not None:
        (rel / lockfile.GPIO_LOCK_NAME).write_text(gpio)
    return rel


def doctor_lines(rel: Path, installed: dict[str, str], monkeypatch) -> list[str]:
    monkeypatch.setattr(lockfile, "installed_version", installed.get)
    lines: list[str] = []
    check_lock(Report(emit=lines.append), rel)
    return lines


def test_doctor_says_ok_when_the_venv_runs_the_lock(tmp_path, monkeypatch):
    rel = release_with(tmp_path, LOCK, f"# targets: {lockfile.this_target()}\nrpi-lgpio==0.6 {H}\n")
    lines = doctor_lines(rel, {"numpy": "2.4.6", "paho-mqtt": "2.2.0"}, monkeypatch)  # no rpi-lgpio: apt's GPIO
    assert lines == ["  ok    Python packages match the release's lock (3 pinned; numpy 2.4.6)"]


def test_doctor_warns_about_other_versions_and_fails_on_missing_ones(tmp_path, monkeypatch):
    rel = release_with(tmp_path, LOCK, f"# targets: {lockfile.this_target()}\nrpi-lgpio==0.6 {H}\n")
    lines = doctor_lines(rel, {"numpy": "1.24.2", "paho-mqtt": "2.2.0", "rpi-lgpio": "0.5"}, monkeypatch)
    assert len(lines) == 1 and lines[0].startswith(
        "  warn  installed versions differ from the release's lock: "
        "numpy 1.24.2 (lock: 2.4.6); rpi-lgpio 0.5 (lock: 0.6)"
    )
    assert "did not test" in lines[0]
    lines = doctor_lines(rel, {"numpy": "2.4.6"}, monkeypatch)
    assert lines == [
        "  FAIL  packages of the release's lock are missing: paho-mqtt missing (lock: 2.2.0) "
        "(deploy again: install.sh rebuilds the venv)"
    ]


def test_doctor_fails_where_the_lock_has_no_wheels(tmp_path, monkeypatch):
    rel = release_with(tmp_path, LOCK.replace(f" {lockfile.this_target()}\n", "\n"))
    lines = doctor_lines(rel, {"numpy": "2.4.6", "paho-mqtt": "2.2.0"}, monkeypatch)
    assert len(lines) == 1 and lines[0].startswith(
        f"  FAIL  {rel / 'requirements.lock'} has no wheels for this "
        f"Python and architecture ({lockfile.this_target()}; it has "
        "cp311-aarch64 cp313-aarch64)"
    )


def test_doctor_says_nothing_outside_a_release(monkeypatch):
    """A checkout (device/ in the repo) has no lock beside its code: no line, no failure."""
    assert lockfile.release_dir() is None
    lines: list[str] = []
    r = Report(emit=lines.append)
    check_lock(r)
    assert lines == [] and r.failed == 0
