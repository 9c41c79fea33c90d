"""The fresh-system tier's own logic (deploy/testbed/fresh.py), without booting anything: it reads
the line a stopped setup prints, and what a step installed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from deploy.testbed.fresh import ROOT_BUILDER, added, dpkg_installed, notes_of, setup_apt_line
from tests.deploy.deploy_helpers import assert_root_builder_refuses, fake_programs

REPO = Path(__file__).resolve().parents[2]


def test_reads_the_line_a_stopped_non_root_setup_prints(tmp_path):
    # scripts/setup.sh as a non-root user on a machine where no Debian package is installed: it must
    # stop before any pip work, and the tier must find the command it printed.
    fake = fake_programs(tmp_path / "bin", {"id": "echo 1000", "dpkg-query": "exit 1"})
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "PYTHON": "python3"}
    proc = subprocess.run(["scripts/setup.sh", "train"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    line = setup_apt_line(proc.stdout + proc.stderr)
    assert line == "sudo apt-get install gcc libc6-dev portaudio19-dev", proc.stderr
    assert (
        setup_apt_line("setup: optional Debian packages missing (...); to have them:\n  sudo apt-get install sox")
        is None
    )


def test_what_a_step_installed():
    status = (
        "Package: make\nStatus: install ok installed\nArchitecture: amd64\nVersion: 4.3-4.1\n\n"
        "Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\n"
        "Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36\n"
    )
    now = dpkg_installed(status)
    assert now == {"make": "4.3-4.1", "libc6:i386": "2.36"}
    assert added({"make": "4.3-4"}, now) == ["libc6:i386=2.36", "make=4.3-4.1"]
    assert added(now, now) == []


def test_report_notes_keep_setups_lines_and_pytests_result():
    out = (
        "setup: optional Debian packages missing (...); to have them:\n"
        "  sudo apt-get install chromium\n"
        "setup: installing Python packages (.[dev]) into .venv\n"
        "collecting ...\n"
        "SKIPPED [3] tests/deploy/test_deploy_nspawn.py: needs root: boots a container\n"
        "========== 812 passed, 40 skipped in 900.12s (0:15:00) ==========\n"
    )
    assert notes_of(out) == [
        "setup: optional Debian packages missing (...); to have them:",
        "sudo apt-get install chromium",
        "setup: installing Python packages (.[dev]) into .venv",
        "SKIPPED [3] tests/deploy/test_deploy_nspawn.py: needs root: boots a container",
        "812 passed, 40 skipped in 900.12s (0:15:00)",
    ]


@pytest.mark.parametrize("distro", ["sid", "noble; touch /tmp/x", "Bookworm", ""])
def test_fresh_root_rejects_an_unknown_distro_before_anything_else(distro, tmp_path):
    assert_root_builder_refuses(ROOT_BUILDER, distro, tmp_path / "cache", "unknown distro")
