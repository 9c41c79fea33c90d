"""A throwaway ssh identity and ssh_config for reaching a test machine on loopback.

Test machinery only. ``SshTarget.create(dir, port)`` writes a fresh ed25519 key and an
``ssh_config`` whose alias (``pibox``) points at ``127.0.0.1:port`` as user ``pi``; pass
``SSH_CONFIG=<dir>/ssh_config`` and ``HOST=pibox`` to ``make deploy`` and it uses them.
``loopback_sshd(dir)`` is such a machine without a machine: this user's own sshd on loopback.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class SshTarget:
    config: Path
    """The ssh_config file (``ssh -F``, ``SSH_CONFIG=``)."""
    alias: str
    """Host alias defined in ``config``."""
    key: Path
    """Private key; ``key.with_suffix(".pub")`` goes into the machine's authorized_keys."""

    @classmethod
    def create(cls, directory: Path, port: int, alias: str = "pibox", user: str = "pi") -> SshTarget:
        directory.mkdir(parents=True, exist_ok=True)
        key = directory / "id_ed25519"
        if not key.exists():
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wakeword-testbed", "-f", str(key)], check=True
            )
        config = directory / "ssh_config"
        target = cls(config, alias, key)
        config.write_text(target.host_block(alias, port, user))
        return target

    def host_block(self, alias: str, port: int, user: str = "pi") -> str:
        """ssh_config lines for ``alias`` -> 127.0.0.1:``port`` with this key."""
        return (
            f"Host {alias}\n"
            f"  HostName 127.0.0.1\n  Port {port}\n  User {user}\n"
            f"  IdentityFile {self.key}\n  IdentitiesOnly yes\n"
            # A fresh machine with fresh host keys every run: nothing to pin.
            f"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n"
        )

    def add_alias(self, alias: str, port: int, user: str = "pi") -> None:
        """Define one more alias in the same config (e.g. a host that does not answer)."""
        with open(self.config, "a") as f:
            f.write(self.host_block(alias, port, user))

    @property
    def public_key(self) -> str:
        return self.key.with_suffix(".pub").read_text()

    def argv(self, command: str) -> list[str]:
        return ["ssh", "-F", str(self.config), "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", self.alias, command]

    def run(
        self, command: str, check: bool = True, timeout_s: float = 300, input_bytes: bytes | None = None
    ) -> subprocess.CompletedProcess:
        """Run ``command`` (remote sh syntax) on the machine; text stdout/stderr."""
        proc = subprocess.run(self.argv(command), input=input_bytes, capture_output=True, timeout=timeout_s)
        out = subprocess.CompletedProcess(
            proc.args, proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        )
        if check and out.returncode != 0:
            raise RuntimeError(
                f"ssh {self.alias} {command!r} failed ({out.returncode}): {out.stderr.strip() or out.stdout.strip()}"
            )
        return out

    def wait(self, timeout_s: float, alive=lambda: True) -> float:
        """Poll until ``ssh true`` works; returns the seconds it took. ``alive()`` False
        (the machine's process died) or the timeout raise RuntimeError."""
        t0 = time.monotonic()
        last = ""
        while time.monotonic() - t0 < timeout_s:
            if not alive():
                raise RuntimeError(f"the machine stopped before ssh came up ({last})")
            proc = subprocess.run(self.argv("true"), capture_output=True, text=True, timeout=60)
            if proc.returncode == 0:
                return time.monotonic() - t0
            last = proc.stderr.strip()
            time.sleep(0.5)
        raise RuntimeError(f"ssh to {self.alias} did not come up within {timeout_s:.0f} s ({last})")


SSHD = Path("/usr/sbin/sshd")


@contextmanager
def loopback_sshd(directory: Path, alias: str = "pitest", setenv: dict[str, str] | None = None) -> Iterator[SshTarget]:
    """An sshd of this user on 127.0.0.1 (key only), reached as ``alias`` through a throwaway
    ssh_config; stopped on exit. ``setenv``: variables every session gets (sshd's SetEnv, e.g. a
    PATH with fake programs in front). Needs openssh-server; any user can run it."""
    port = free_port()
    user = pwd.getpwuid(os.geteuid()).pw_name
    target = SshTarget.create(directory / "client", port, alias=alias, user=user)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(directory / "host_key")], check=True)
    (directory / "authorized_keys").write_text(target.public_key)
    env_lines = "".join(f'SetEnv {k}="{v}"\n' for k, v in (setenv or {}).items())
    (directory / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {directory / 'host_key'}\n"
        f"PidFile {directory / 'sshd.pid'}\nAuthorizedKeysFile {directory / 'authorized_keys'}\n"
        "UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        f"PermitRootLogin prohibit-password\n{env_lines}"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    proc = subprocess.Popen(
        [str(SSHD), "-D", "-e", "-f", str(directory / "sshd_config")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        if proc.poll() is not None:
            said = proc.stderr.read().decode().strip() if proc.stderr is not None else ""
            raise RuntimeError(f"sshd did not start: {said}")
        target.wait(10, alive=lambda: proc.poll() is None)
        yield target
    finally:
        proc.terminate()
        proc.wait(timeout=10)
