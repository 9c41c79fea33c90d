"""A booted Debian container to deploy into: ``systemd-nspawn --boot`` over the cached root that
``nspawn-root.sh`` builds. Test machinery only.

The container runs systemd as PID 1 with journald and sshd; it shares the host's network, so
its sshd listens on ``127.0.0.1:<free port>`` only, reached with a throwaway key
(:class:`~deploy.testbed.ssh.SshTarget`). Every :class:`Container` boots the cached root under a
throwaway tmpfs overlay, so each run starts from the same fresh machine.

pip inside the container gets this machine's pip configuration (``pip config list``: local
mirrors, find-links, constraints) as ``/etc/pip.conf``, with the local directories it names
bind-mounted read-only; the root already trusts the host's extra CA certificates.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from deploy.testbed.machine import Machine
from deploy.testbed.ssh import SshTarget, free_port

log = logging.getLogger(__name__)

ROOT_BUILDER = Path(__file__).resolve().parent / "nspawn-root.sh"
HOSTNAME = "pibox-ns"


def build_root() -> Path:
    """The cached container root (built on the first call, about a minute)."""
    proc = subprocess.run([str(ROOT_BUILDER)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"nspawn-root.sh failed: {proc.stderr.strip()[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def host_pip_config(python: str = sys.executable) -> tuple[str, list[Path]]:
    """This machine's effective pip settings as pip.conf text, and the local paths they name.

    ``pip config list`` prints ``scope.key='value'`` lines in load order (files, then the
    environment), so a later line for the same key wins.
    """
    proc = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True)
    settings: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep and "." in name:
            settings[name.rsplit(".", 1)[1]] = value.strip().strip("'\"")
    paths: list[Path] = []
    for key, value in settings.items():
        if key == "cert":
            continue  # the container's own bundle (same path) already holds the host's CAs
        for word in value.split():
            path = Path(word[len("file://") :] if word.startswith("file://") else word)
            if not path.is_absolute() or not path.exists():
                continue
            if path.name == "simple" and word.startswith("file://"):
                path = path.parent  # an index's pages link to files beside simple/
            if path not in paths:
                paths.append(path)
    text = "[global]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())
    return text, paths


class Container(Machine):
    """One booted container; use as a context manager (stops it on exit).

    The cached root is never written: nspawn boots it with ``--volatile=overlay`` (a tmpfs
    on top takes every write and vanishes with the container), and the files of this run
    (authorized key, sshd port, pip config, ``files``) are bind-mounted read-only into it.
    Nothing to copy before and nothing to delete after."""

    def __init__(self, root: Path, workdir: Path, files: dict[str, bytes] | None = None):
        """``files``: path inside the container -> content (bind-mounted read-only)."""
        self.cached_root = root
        self.files = dict(files or {})
        self.workdir = workdir
        self.port = free_port()
        self.ssh = SshTarget.create(workdir / "ssh", self.port)
        self.proc: subprocess.Popen | None = None
        self.console_log = workdir / "console.log"

    def _binds(self) -> list[str]:
        """Write this run's files under workdir/files and return the nspawn bind options."""
        pip_conf, pip_paths = host_pip_config()
        files = {
            "/etc/ssh/sshd_config.d/20-port.conf": f"Port {self.port}\n".encode(),
            "/home/pi/.ssh/authorized_keys": self.ssh.public_key.encode(),
            "/etc/pip.conf": pip_conf.encode(),
            **self.files,
        }
        binds = [f"--bind-ro={p}" for p in pip_paths]
        for i, (inside, data) in enumerate(files.items()):
            host = self.workdir / "files" / f"{i}-{Path(inside).name}"
            host.parent.mkdir(parents=True, exist_ok=True)
            host.write_bytes(data)
            host.chmod(0o644)  # sshd's StrictModes: root-owned, not group/world-writable
            binds.append(f"--bind-ro={host}:{inside}")
        return binds

    def start(self, timeout_s: float = 60) -> float:
        """Boot and wait for ssh; returns the seconds from boot to ssh."""
        argv = [
            "systemd-nspawn",
            "--quiet",
            "-D",
            str(self.cached_root),
            "--volatile=overlay",
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=pipe",
            f"--machine={HOSTNAME}-{self.port}",
            f"--hostname={HOSTNAME}",
            *self._binds(),
        ]
        log.info("booting: %s", shlex.join(argv))
        console = open(self.console_log, "wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
        )
        console.close()
        return self.ssh.wait(timeout_s, alive=lambda: self.proc.poll() is None)

    def stop(self, timeout_s: float = 10) -> None:
        """Power the container off. The first SIGTERM asks nspawn to halt the container
        cleanly, a second one ends it at once (its writes are thrown away anyway)."""
        if self.proc is not None and self.proc.poll() is None:
            for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
                if sig == signal.SIGKILL:
                    os.killpg(self.proc.pid, sig)
                else:
                    self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout_s)
                    break
                except subprocess.TimeoutExpired:
                    log.warning("container still running %g s after %s", timeout_s, sig.name)
        self.proc = None


def wait_until(predicate, timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passes; returns the last result."""
    t0 = time.monotonic()
    while True:
        if predicate():
            return True
        if time.monotonic() - t0 > timeout_s:
            return False
        time.sleep(interval_s)
