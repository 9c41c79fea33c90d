"""Booted Debian containers: ``systemd-nspawn --boot`` over a root directory. Test machinery only.

:class:`Booted` is any such machine (systemd as PID 1, the host's network), commands run inside by
entering its namespaces; the fresh-system tier (``fresh.py``) boots a copy of a fresh
installation's root with it. :class:`Container` is the deploy tests' target: the cached root that
``nspawn-root.sh`` builds, with journald and sshd; it shares the host's network, so its sshd
listens on ``127.0.0.1:<free port>`` only, reached with a throwaway key
(:class:`~deploy.testbed.ssh.SshTarget`). Every :class:`Container` boots the cached root under a
throwaway tmpfs overlay, so each run starts from the same fresh machine.

pip inside a container gets this machine's pip configuration (``pip config list``: local
mirrors, find-links, constraints) as ``/etc/pip.conf``, with the local directories it names
bind-mounted read-only (:func:`bind_files`); the roots already trust the host's extra CA certificates.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
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


class Booted(Machine):
    """``systemd-nspawn --boot`` over a root directory (systemd as PID 1, the host's network);
    use as a context manager (stops it on exit). ``options``: more nspawn options (``--bind-ro=``,
    ...). ``volatile``: boot under a throwaway tmpfs overlay, so the root is never written
    (else the root itself takes every write: give it a copy). :meth:`enter` makes the host command line
    that runs a command inside, entering its namespaces (no ssh, no machined needed)."""

    def __init__(
        self,
        root: Path,
        workdir: Path,
        *,
        machine: str,
        hostname: str,
        volatile: bool = True,
        options: Sequence[str] = (),
    ):
        self.root = root
        self.workdir = workdir
        self.machine = machine
        self.hostname = hostname
        self.volatile = volatile
        self.options = list(options)
        self.proc: subprocess.Popen | None = None
        self.console_log = workdir / "console.log"

    def argv(self) -> list[str]:
        """The systemd-nspawn command line that boots the machine."""
        return [
            "systemd-nspawn",
            "--quiet",
            "-D",
            str(self.root),
            *(["--volatile=overlay"] if self.volatile else []),
            "--boot",
            "--register=no",
            "--keep-unit",
            "--console=pipe",
            f"--machine={self.machine}",
            f"--hostname={self.hostname}",
            *self.options,
        ]

    def boot(self) -> None:
        argv = self.argv()
        log.info("booting: %s", shlex.join(argv))
        self.workdir.mkdir(parents=True, exist_ok=True)
        console = open(self.console_log, "wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT, start_new_session=True
        )
        console.close()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def leader(self) -> int | None:
        """The host's PID of the container's PID 1 (None until it runs)."""
        if not self.alive():
            return None
        assert self.proc is not None
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                continue
            nspid = next((line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:")), [])
            if len(nspid) > 1 and nspid[-1] == "1":
                return pid
            todo.extend(int(c) for c in children)
        return None

    def enter(self, argv: Sequence[str]) -> list[str]:
        """The host command line that runs ``argv`` as root inside the running container."""
        pid = self.leader()
        if pid is None:
            raise RuntimeError(f"{self.machine} is not running:\n{self.console_tail()}")
        return ["nsenter", "--target", str(pid), "--all", "--root", "--wd", "--", *argv]

    def wait_booted(self, timeout_s: float = 120) -> float:
        """Wait until systemd inside has finished starting up (running or degraded); returns
        the seconds it took."""
        t0 = time.monotonic()

        def up() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.machine} stopped while booting:\n{self.console_tail()}")
            if self.leader() is None:
                return False
            state = subprocess.run(
                self.enter(["systemctl", "is-system-running"]), capture_output=True, text=True
            ).stdout.strip()
            return state in ("running", "degraded")

        if not wait_until(up, timeout_s):
            raise RuntimeError(f"{self.machine} did not finish booting in {timeout_s:g} s:\n{self.console_tail()}")
        return time.monotonic() - t0

    def start(self, timeout_s: float = 120) -> float:
        """Boot and wait for systemd inside; returns the seconds it took."""
        self.boot()
        return self.wait_booted(timeout_s)

    def stop(self, timeout_s: float = 10) -> None:
        """Power the container off. The first SIGTERM asks nspawn to halt the container
        cleanly, a second one ends it at once."""
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


class Container(Booted):
    """The deploy tests' target: the cached root booted under a throwaway overlay and reached
    over ssh as ``pi``; use as a context manager (stops it on exit).

    The cached root is never written: nspawn boots it with ``--volatile=overlay`` (a tmpfs
    on top takes every write and vanishes with the container), and the files of this run
    (authorized key, sshd port, pip config, ``files``) are bind-mounted read-only into it.
    Nothing to copy before and nothing to delete after."""

    def __init__(self, root: Path, workdir: Path, files: dict[str, bytes] | None = None):
        """``files``: path inside the container -> content (bind-mounted read-only)."""
        self.port = free_port()
        super().__init__(root, workdir, machine=f"{HOSTNAME}-{self.port}", hostname=HOSTNAME)
        self.cached_root = root
        self.files = dict(files or {})
        self.ssh = SshTarget.create(workdir / "ssh", self.port)

    def start(self, timeout_s: float = 60) -> float:
        """Boot and wait for ssh; returns the seconds from boot to ssh."""
        self.options = bind_files(
            self.workdir / "files",
            {
                "/etc/ssh/sshd_config.d/20-port.conf": f"Port {self.port}\n".encode(),
                "/home/pi/.ssh/authorized_keys": self.ssh.public_key.encode(),
                **self.files,
            },
        )
        self.boot()
        return self.ssh.wait(timeout_s, alive=self.alive)


def bind_files(dirpath: Path, files: dict[str, bytes]) -> list[str]:
    """nspawn options that put this machine's pip configuration (:func:`host_pip_config`, with
    the local directories it names) and ``files`` (path inside -> content, written under
    ``dirpath``) into a container, read-only."""
    pip_conf, pip_paths = host_pip_config()
    binds = [f"--bind-ro={p}" for p in pip_paths]
    for i, (inside, data) in enumerate({"/etc/pip.conf": pip_conf.encode(), **files}.items()):
        host = dirpath / f"{i}-{Path(inside).name}"
        host.parent.mkdir(parents=True, exist_ok=True)
        host.write_bytes(data)
        host.chmod(0o644)  # sshd's StrictModes: root-owned, not group/world-writable
        binds.append(f"--bind-ro={host}:{inside}")
    return binds


def wait_until(predicate, timeout_s: float, interval_s: float = 0.5) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passes; returns the last result."""
    t0 = time.monotonic()
    while True:
        if predicate():
            return True
        if time.monotonic() - t0 > timeout_s:
            return False
        time.sleep(interval_s)
