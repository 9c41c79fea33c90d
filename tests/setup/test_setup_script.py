"""scripts/setup.sh on a described machine: which Debian packages it installs (root) or names
(otherwise, stopping before any pip work when the venv needs them), and where torch comes from.

The script runs for real on a copy of its inputs; the machine around it is fake programs first on
PATH: ``id`` (the user), ``dpkg-query`` (what is installed), ``apt-get`` and the venv's ``pip``
(they record their arguments), ``uname``; the venv's ``python`` is this interpreter without
site-packages (so torch counts as not installed)."""

from __future__ import annotations

import http.server
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PYTHON = os.path.realpath(sys.executable)
FAKES = {
    "id": '[ "$1" = -u ] && echo "$FAKE_UID"',
    # -W -f=${Status} PKG: installed unless named in FAKE_MISSING; -S FILE: owned by a package iff FAKE_OWNED
    "dpkg-query": """case "$1" in
  -W) case " $FAKE_MISSING " in *" $3 "*) exit 1 ;; esac; printf 'install ok installed' ;;
  -S) [ -n "$FAKE_OWNED" ] || exit 1; echo "python3-minimal: $2" ;;
esac""",
    "apt-get": 'echo "$*" >> "$FAKE_LOG.apt-get"',
    "uname": 'echo "$FAKE_ARCH"',
}
VENV_FAKES = {
    # pip config get: FAKE_PIP_INDEX; install: recorded, and a +cpu build is found unless FAKE_NO_CPU
    "pip": """if [ "$1" = config ]; then [ -n "$FAKE_PIP_INDEX" ] && echo "$FAKE_PIP_INDEX"; exit 0; fi
out=""; prev=""
for a in "$@"; do  # a constraints file (-c FILE, a temp file) is recorded by its lines
  [ "$prev" = -c ] && a="[$(tr '\\n' ' ' < "$a" | sed 's/ $//')]"
  out="$out $a"; prev=$a
done
echo "${out# }" >> "$FAKE_LOG.pip"
case "$*" in *+cpu*) [ -z "$FAKE_NO_CPU" ] ;; esac""",
    "python": f'case "$*" in *train.frontend*) exit 0 ;; esac\nexec {PYTHON} -S "$@"',
}
# the project's install, held to the versions the Pi runs (deploy/requirements.lock's pins)
LOCK_PINS = [line.split()[0] for line in (REPO / "deploy/requirements.lock").read_text().splitlines() if "==" in line]
PROJECT_INSTALL = f"install -q --disable-pip-version-check -e .[dev] -c [{' '.join(LOCK_PINS)}]"


def write_programs(bindir: Path, programs: dict[str, str]) -> None:
    bindir.mkdir(parents=True, exist_ok=True)
    for name, body in programs.items():
        (bindir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bindir / name).chmod(0o755)


class Checkout:
    """A copy of what setup.sh reads, and the fake machine around it."""

    def __init__(self, root: Path, venv: bool = True):
        self.root = root
        for rel in ("scripts/setup.sh", "scripts/apt-extra.txt", "pyproject.toml", "deploy/requirements.lock"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, root / rel)
        self.bin = root / "fakebin"
        write_programs(self.bin, FAKES)
        if venv:  # an existing venv: setup.sh goes straight to the pip step
            write_programs(root / ".venv" / "bin", VENV_FAKES)
        self.log = root / "log"

    def run(
        self, profile: str = "test", uid: int = 1000, missing: str = "", arch: str = "x86_64", **env: str
    ) -> subprocess.CompletedProcess:
        full = {
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.root),
            "PYTHON": PYTHON,
            "FAKE_UID": str(uid),
            "FAKE_MISSING": missing,
            "FAKE_ARCH": arch,
            "FAKE_LOG": str(self.log),
            "FAKE_OWNED": "",
            "FAKE_PIP_INDEX": "",
            "FAKE_NO_CPU": "",
            **env,
        }
        return subprocess.run(
            ["bash", str(self.root / "scripts" / "setup.sh"), profile],
            env=full,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def calls(self, program: str) -> list[str]:
        path = Path(f"{self.log}.{program}")
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def checkout(tmp_path) -> Checkout:
    return Checkout(tmp_path / "repo")


def torch_installs(checkout: Checkout) -> list[str]:
    return [c for c in checkout.calls("pip") if "torch==" in c]


def test_non_root_stops_before_pip_with_the_exact_sudo_line(tmp_path):
    co = Checkout(tmp_path / "repo", venv=False)
    proc = co.run(missing="gcc portaudio19-dev chromium qemu-utils")
    assert proc.returncode == 1
    lines = proc.stderr.splitlines()
    assert "  sudo apt-get install gcc portaudio19-dev" in lines  # what the venv needs, nothing else
    i = lines.index("  sudo apt-get install gcc portaudio19-dev")
    assert "sudo apt-get update" in lines[i + 1]  # a fresh container's empty package lists
    assert "  sudo apt-get install chromium qemu-utils" in lines  # optional, named on their own line
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not (co.root / ".venv").exists() and co.calls("apt-get") == []


def test_a_debian_python_needs_its_venv_and_headers_packages(tmp_path):
    co = Checkout(tmp_path / "repo", venv=False)
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    debian_default = PYTHON == os.path.realpath("/usr/bin/python3")
    names = "python3-venv python3-dev" if debian_default else f"python{ver}-venv python{ver}-dev"
    proc = co.run(missing=f"{names} gcc", FAKE_OWNED="1")
    assert proc.returncode == 1
    assert f"  sudo apt-get install {names} gcc" in proc.stderr.splitlines()
    assert not (co.root / ".venv").exists()


def test_non_root_without_optional_packages_names_them_and_goes_on(checkout):
    proc = checkout.run(missing="chromium mmdebstrap", TORCH_INDEX="")
    assert proc.returncode == 0, proc.stderr
    assert "  sudo apt-get install chromium mmdebstrap" in proc.stderr.splitlines()
    assert "tests that use them skip" in proc.stderr
    assert checkout.calls("pip") == [PROJECT_INSTALL]
    assert checkout.calls("apt-get") == []


def test_training_goes_on_without_the_tts_voices(checkout):
    proc = checkout.run("train", missing="flite festival", TORCH_INDEX="")
    assert proc.returncode == 0, proc.stderr
    assert "  sudo apt-get install flite festival" in proc.stderr.splitlines()
    assert "dataset report says which" in proc.stderr


def test_background_sound_is_wanted_by_training_alone(checkout):
    """Every package of train.backgrounds.PACKAGED_SOUNDS is a train-optional line of
    scripts/apt-extra.txt: training names them (or installs them as root), the tests never ask."""
    from train.backgrounds import PACKAGED_SOUNDS

    packages = " ".join(dict.fromkeys(sound.package for sound in PACKAGED_SOUNDS))
    proc = checkout.run("train", missing=packages, TORCH_INDEX="")
    assert proc.returncode == 0, proc.stderr
    named = [line.split()[3:] for line in proc.stderr.splitlines() if line.startswith("  sudo apt-get install")]
    assert [sorted(n) for n in named] == [sorted(packages.split())]
    assert "background sound" in proc.stderr
    proc = checkout.run(uid=0, missing=packages, TORCH_INDEX="")
    assert proc.returncode == 0, proc.stderr
    assert checkout.calls("apt-get") == []
    proc = checkout.run("train", uid=0, missing=packages, TORCH_INDEX="")
    assert proc.returncode == 0, proc.stderr
    (call,) = checkout.calls("apt-get")
    assert call.startswith("install -y -q --no-install-recommends ")
    assert sorted(call.split()[4:]) == sorted(packages.split())


def test_root_installs_everything_missing_in_one_apt_get(checkout):
    proc = checkout.run(uid=0, missing="gcc chromium", TORCH_INDEX="")
    assert proc.returncode == 0, proc.stderr
    assert checkout.calls("apt-get") == ["install -y -q --no-install-recommends gcc chromium"]
    assert "installing Debian packages: gcc chromium" in proc.stdout


def test_python_older_than_3_11_is_one_line(tmp_path):
    co = Checkout(tmp_path / "repo", venv=False)
    write_programs(co.bin, {"python3.9": 'case "$2" in *print*) echo 3.9 ;; *) exit 1 ;; esac'})
    proc = co.run(PYTHON="python3.9")
    assert proc.returncode == 1
    assert proc.stderr == (
        "setup: python3.9 is Python 3.9; wakeword needs 3.11 or newer (set PYTHON=python3.11 or newer)\n"
    )


def test_unknown_profile_is_usage(checkout):
    proc = checkout.run("gpu")
    assert proc.returncode == 2 and "usage:" in proc.stderr


# -- where torch comes from ----------------------------------------------------------------
def gpu_here() -> bool:
    return shutil.which("nvidia-smi") is not None or Path("/proc/driver/nvidia").exists()


@pytest.fixture
def cpu_index():
    """A PyTorch-style index on loopback that answers every request."""

    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/whl/cpu"
    server.shutdown()
    server.server_close()


def test_torch_index_given_is_used_for_the_pinned_torch(checkout):
    proc = checkout.run(TORCH_INDEX="https://example.invalid/whl/cu126")
    assert proc.returncode == 0, proc.stderr
    pip = checkout.calls("pip")
    assert pip[0] == (
        "install -q --disable-pip-version-check --index-url https://example.invalid/whl/cu126 torch==2.13.0"
    )
    assert pip[1:] == [PROJECT_INSTALL]


def test_the_cpu_build_where_no_gpu_is(checkout, cpu_index):
    if gpu_here():
        pytest.skip("this machine has an NVIDIA GPU: setup.sh rightly leaves torch to pip's index")
    proc = checkout.run(TORCH_CPU_INDEX=cpu_index)
    assert proc.returncode == 0, proc.stderr
    assert torch_installs(checkout) == [f"install -q --disable-pip-version-check --index-url {cpu_index} torch==2.13.0"]


@pytest.mark.parametrize("case", ["TORCH_INDEX=", "nvidia-smi", "aarch64"])
def test_torch_from_pips_own_configuration(checkout, case):
    env, arch = {}, "x86_64"
    if case == "TORCH_INDEX=":
        env["TORCH_INDEX"] = ""
    elif case == "nvidia-smi":
        write_programs(checkout.bin, {"nvidia-smi": "exit 0"})
    else:
        arch = "aarch64"  # PyPI's aarch64 torch is the CPU build
    proc = checkout.run(arch=arch, **env)
    assert proc.returncode == 0, proc.stderr
    assert torch_installs(checkout) == []  # the project install brings torch from pip's index


NOWHERE = "http://127.0.0.1:9/whl/cpu"  # the discard port: nothing answers


@pytest.mark.parametrize("own_index", [None, "https://mirror.example/simple"])
@pytest.mark.parametrize("cpu_build_in_pips_sources", [True, False])
def test_without_the_cpu_index_a_cpu_build_from_pips_sources_else_a_clear_line(
    checkout, own_index, cpu_build_in_pips_sources
):
    if gpu_here():
        pytest.skip("this machine has an NVIDIA GPU")
    proc = checkout.run(
        TORCH_CPU_INDEX=NOWHERE, FAKE_PIP_INDEX=own_index or "", FAKE_NO_CPU="" if cpu_build_in_pips_sources else "1"
    )
    assert proc.returncode == 0, proc.stderr
    assert torch_installs(checkout) == ["install -q --disable-pip-version-check torch==2.13.0+cpu"]
    why = f"not used: pip has an index of its own, {own_index}" if own_index else "cannot be reached"
    if cpu_build_in_pips_sources:
        assert (
            f"setup: installed torch==2.13.0+cpu (the CPU build) from pip's own sources (PyTorch's CPU index {why})"
        ) in proc.stdout.splitlines()
    else:
        assert proc.stderr.splitlines()[-1] == (
            f"setup: no CPU build of torch here (PyTorch's CPU index {why}): pip's index brings its own, "
            "with CUDA on x86_64 (several GB); TORCH_INDEX=url picks the index"
        )
