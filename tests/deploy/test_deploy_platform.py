"""An unsupported Pi (32-bit OS, Python older than 3.11) says so in one line, before anything is
installed: deploy/pi/platform.sh on its own, through install.sh, and through `make deploy` over real
ssh. The machine is described by fake `dpkg`, `uname` and `python3` programs first on PATH."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import REPO, fake_programs, make, result_lines, run_install_sh

PLATFORM_SH = REPO / "deploy" / "pi" / "platform.sh"


def fake_machine(bindir: Path, dpkg_arch: str | None, uname_m: str, python: str | None = "3.11") -> Path:
    """Programs that describe a machine: ``dpkg --print-architecture``, ``uname -m``, ``python3``'s
    version (None: the program is absent)."""
    programs = {"uname": f"echo {uname_m}"}
    if dpkg_arch is not None:
        programs["dpkg"] = f'[ "$1" = --print-architecture ] && echo {dpkg_arch}'
    if python is not None:
        programs["python3"] = f"echo {python}"
    return fake_programs(bindir, programs)


def problem(bindir: Path) -> subprocess.CompletedProcess:
    """``ww_platform_problem`` with only the fake programs on PATH."""
    return subprocess.run(
        ["/bin/sh", "-c", '. "$1"; ww_platform_problem', "sh", str(PLATFORM_SH)],
        env={"PATH": str(bindir)},
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("dpkg_arch, uname_m", [("arm64", "aarch64"), ("amd64", "x86_64"), (None, "aarch64")])
def test_a_64_bit_os_with_python_3_11_is_supported(tmp_path, dpkg_arch, uname_m):
    proc = problem(fake_machine(tmp_path / "bin", dpkg_arch, uname_m))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.parametrize(
    "dpkg_arch, uname_m, named",
    [
        ("armhf", "aarch64", "armhf"),  # 32-bit Raspberry Pi OS on a Pi 4/5: a 64-bit kernel
        ("armhf", "armv7l", "armhf"),
        ("armel", "armv6l", "armel"),
        (None, "armv7l", "armv7l"),  # no dpkg: the kernel's word
        (None, "armv6l", "armv6l"),
    ],
)
def test_a_32_bit_arm_os_is_one_line_naming_the_fix(tmp_path, dpkg_arch, uname_m, named):
    proc = problem(fake_machine(tmp_path / "bin", dpkg_arch, uname_m))
    assert proc.returncode == 1
    assert proc.stdout == (
        f"unsupported Pi: a 32-bit OS ({named}); onnxruntime publishes no 32-bit ARM wheel: "
        "install the 64-bit Raspberry Pi OS (arm64)\n"
    )


@pytest.mark.parametrize("dpkg_arch, uname_m", [("i386", "x86_64"), ("riscv64", "riscv64")])
def test_other_machines_without_onnxruntime_wheels_are_named(tmp_path, dpkg_arch, uname_m):
    proc = problem(fake_machine(tmp_path / "bin", dpkg_arch, uname_m))
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"unsupported machine: {dpkg_arch};") and proc.stdout.count("\n") == 1


@pytest.mark.parametrize("python, ok", [("3.9", False), ("3.10", False), ("3.11", True), ("3.13", True), (None, True)])
def test_python_older_than_3_11_is_refused(tmp_path, python, ok):
    proc = problem(fake_machine(tmp_path / "bin", "arm64", "aarch64", python))
    if ok:
        assert (proc.returncode, proc.stdout) == (0, "")
    else:
        assert proc.returncode == 1
        assert proc.stdout == (
            f"unsupported Pi: Python {python}; wakeword needs Python 3.11 or newer: "
            "install the 64-bit Raspberry Pi OS Bookworm or later\n"
        )


@pytest.fixture
def release(tmp_path) -> Path:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"model bytes")
    proc = subprocess.run(
        [sys.executable, "-m", "deploy.release", "--model", str(model), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip())


def test_install_sh_stops_first_and_changes_nothing(tmp_path, release):
    bindir = fake_machine(tmp_path / "bin", "armhf", "aarch64", "3.11")
    proc = run_install_sh(release, bindir, tmp_path / "apt-get.calls")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "RESULT FAILED: unsupported Pi: a 32-bit OS (armhf); onnxruntime "
        "publishes no 32-bit ARM wheel: install the 64-bit Raspberry Pi OS (arm64)"
    ]
    assert proc.stderr == "" and not (tmp_path / "apt-get.calls").exists()


def test_make_deploy_says_it_once_before_uploading(tmp_path):
    """Real ssh to this machine's loopback, whose sessions see the fake programs of a 32-bit Pi."""
    from deploy.testbed.ssh import SSHD, loopback_sshd

    if not SSHD.exists():
        pytest.fail("sshd missing: run scripts/setup.sh test (openssh-server)")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"model bytes")
    bindir = fake_machine(tmp_path / "bin", "armhf", "aarch64", "3.11")
    with loopback_sshd(tmp_path / "sshd", alias="pi32", setenv={"PATH": f"{bindir}:/usr/bin:/bin"}) as target:
        proc = make(
            "deploy",
            "HOST=pi32",
            f"MODEL={model}",
            f"SSH_CONFIG={target.config}",
            env={"WW_LOG_DIR": str(tmp_path / "logs")},
            timeout_s=120,
        )
    assert proc.returncode != 0
    why = (
        "unsupported Pi: a 32-bit OS (armhf); onnxruntime publishes no 32-bit ARM wheel: "
        "install the 64-bit Raspberry Pi OS (arm64)"
    )
    assert result_lines(proc.stdout) == {"pi32": f"FAILED: {why}"}
    assert proc.stdout.count(why) == 2  # the host's own line and the summary line, nothing else
    assert "uploading" not in proc.output and "installing" not in proc.output
