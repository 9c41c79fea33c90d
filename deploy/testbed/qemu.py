"""The emulated Pi: qemu-system-aarch64 (`virt` board, cortex-a72) booting the image that
``pi-image.sh`` builds, with ssh forwarded from 127.0.0.1 only. Test machinery only.

Each :class:`EmulatedPi` boots through its own qcow2 overlay on the cached image, so every run
starts from a freshly flashed machine and the cache stays pristine. The guest has no KVM (an
x86 host cannot accelerate arm64): expect ~45 s to boot on an idle machine, and programs 90-400x
slower than on the host.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
from pathlib import Path

from deploy.testbed.machine import Machine
from deploy.testbed.ssh import SshTarget, free_port

log = logging.getLogger(__name__)

IMAGE_BUILDER = Path(__file__).resolve().parent / "pi-image.sh"


SUITES = ("bookworm", "trixie")
"""The Debian suites ``pi-image.sh`` builds: Debian 12 (Python 3.11) and 13 (Python 3.13)."""


def build_image(suite: str = "bookworm") -> Path:
    """The cached image directory of ``suite`` (built on the first call: several minutes)."""
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r} (choose from {', '.join(SUITES)})")
    proc = subprocess.run([str(IMAGE_BUILDER), suite], stdout=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        raise RuntimeError("pi-image.sh failed (its messages are above)")
    return Path(proc.stdout.strip().splitlines()[-1])


class EmulatedPi(Machine):
    """One booted VM; use as a context manager (powers it off and deletes the overlay)."""

    console_tail_bytes = 4000

    def __init__(self, image_dir: Path, workdir: Path, cpus: int = 2, memory_mb: int = 2048):
        self.image_dir = image_dir
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        key = image_dir / "id_ed25519"
        self.ssh = SshTarget(workdir / "ssh_config", "pibox", key)
        self.ssh.config.write_text(self.ssh.host_block("pibox", self.port))
        self.cpus, self.memory_mb = cpus, memory_mb
        self.overlay = workdir / "disk.qcow2"
        self.console_log = workdir / "console.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 600) -> float:
        """Boot and wait until ssh answers; returns the seconds that took."""
        subprocess.run(
            [
                "qemu-img",
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "raw",
                "-b",
                str(self.image_dir / "rootfs.img"),
                str(self.overlay),
            ],
            check=True,
        )
        argv = [
            "qemu-system-aarch64",
            "-M",
            "virt",
            "-cpu",
            "cortex-a72",
            "-smp",
            str(self.cpus),
            "-m",
            str(self.memory_mb),
            "-kernel",
            str(self.image_dir / "vmlinuz"),
            "-initrd",
            str(self.image_dir / "initrd.img"),
            "-append",
            "root=/dev/vda rw console=ttyAMA0 net.ifnames=0",
            "-drive",
            f"if=none,file={self.overlay},format=qcow2,id=hd0",
            "-device",
            "virtio-blk-pci,drive=hd0",
            # qemu's user network: the guest reaches the registries through host sockets; the
            # only way in is ssh, forwarded from the host's loopback.
            "-netdev",
            f"user,id=net0,hostfwd=tcp:127.0.0.1:{self.port}-:22",
            "-device",
            "virtio-net-pci,netdev=net0,romfile=",  # no option ROM: we boot with -kernel
            "-display",
            "none",
            "-monitor",
            "none",
            "-serial",
            f"file:{self.console_log}",
        ]
        log.info("booting: %s", shlex.join(argv))
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(self.workdir / "qemu.log", "wb"),
            start_new_session=True,
        )
        return self.ssh.wait(timeout_s, alive=lambda: self.proc.poll() is None)

    def stop(self, timeout_s: float = 90) -> None:
        """Power off cleanly (systemctl poweroff), else kill qemu; then delete the overlay."""
        if self.proc is not None and self.proc.poll() is None:
            self.ssh.run("sudo -n systemctl poweroff", check=False, timeout_s=30)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None
        self.overlay.unlink(missing_ok=True)
