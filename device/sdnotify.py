"""Talking to systemd: the only module that does.

- :class:`Notifier`: sd_notify without dependencies -- one datagram per message to the unix
  socket named by ``$NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace).
  Without that variable (run by hand, in tests) every call is a no-op. Messages: ``READY=1``,
  ``WATCHDOG=1``, ``STATUS=<text>``, ``STOPPING=1``.
- :func:`setup_logging`: log lines go to the journal through systemd-python's
  ``JournalHandler`` when the process runs under systemd (``$INVOCATION_ID`` set) and the
  module imports; to stderr otherwise (where systemd also collects them).
"""

from __future__ import annotations

import logging
import os
import socket
import sys

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: str | None = None):
        """``address``: the notify socket; ``None`` reads ``$NOTIFY_SOCKET``."""
        address = os.environ.get("NOTIFY_SOCKET", "") if address is None else address
        self.address = address
        self._sock: socket.socket | None = None
        self._last_status = ""
        if address:
            self._target = "\0" + address[1:] if address.startswith("@") else address
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, message: str) -> bool:
        """Send one message; False when disabled or the socket refuses (never raises)."""
        if self._sock is None:
            return False
        try:
            self._sock.sendto(message.encode(), self._target)
            return True
        except OSError as exc:
            log.debug("sd_notify %r failed: %s", message, exc)
            return False

    def ready(self) -> None:
        self.notify("READY=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        """Send ``STATUS=text`` (only when it changed: no point flooding the manager)."""
        text = " ".join(text.split())
        if text != self._last_status:
            self._last_status = text
            self.notify(f"STATUS={text}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval_s() -> float | None:
    """Half of systemd's ``WatchdogSec`` for this process (how often to ping), or None."""
    usec, pid = os.environ.get("WATCHDOG_USEC"), os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2e6
    except ValueError:
        return None


def setup_logging(level: int = logging.INFO) -> str:
    """Configure the root logger once; returns ``"journal"`` or ``"stderr"``."""
    root = logging.getLogger()
    root.setLevel(level)
    for h in list(root.handlers):
        root.removeHandler(h)
    if os.environ.get("INVOCATION_ID"):
        try:
            from systemd.journal import JournalHandler

            handler = JournalHandler(SYSLOG_IDENTIFIER="wakeword")
            handler.setFormatter(logging.Formatter("%(message)s"))
            root.addHandler(handler)
            return "journal"
        except ImportError:
            pass
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("wakeword: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    return "stderr"
