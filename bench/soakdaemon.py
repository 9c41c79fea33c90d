"""The daemon under soak: started, watched, sampled and restarted like systemd would.

:class:`DaemonRun` starts ``wakeword listen --json`` (this checkout's code: ``python -m device.cli``
with the repository first on ``PYTHONPATH``), reads its detection lines and its log as they come
(each stamped with the monotonic clock), samples its resident memory and CPU time from ``/proc``,
and -- when it exits without being asked to -- records a crash and starts it again after a second
(``Restart=on-failure``); :meth:`DaemonRun.abort_for_watchdog` is systemd's other way of ending
it. Its CPU time comes from the kernel (``os.wait4``) when it is reaped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.soakrig import proc_cpu_s, proc_mem_kib

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
RESTART_SEC = 1.0
"""Wait before restarting a crashed daemon (the unit's RestartSec)."""


@dataclass
class Detection:
    at: float
    """Monotonic time the line arrived (when the daemon acted on it)."""
    time_s: float
    """The daemon's own stream time of the detection."""
    score: float
    pid: int = 0


@dataclass
class Exit:
    at: float
    code: int
    """Exit status (negative: killed by that signal)."""
    cause: str
    """``stop`` (the bench's SIGTERM at the end), ``watchdog`` (the emulated systemd watchdog's
    SIGABRT: its loop stopped pinging) or ``crash`` (it exited by itself)."""

    @property
    def asked(self) -> bool:
        return self.cause == "stop"

    cpu_s: float
    last_line: str


@dataclass
class Sample:
    at: float
    pid: int
    rss_kib: int
    anon_kib: int
    """RssAnon: the process's own memory (see :func:`bench.soakrig.proc_mem_kib`)."""
    cpu_s: float


def daemon_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of every process the bench runs from this checkout."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("NOTIFY_SOCKET", "INVOCATION_ID", "WATCHDOG_USEC", "WATCHDOG_PID")
    }
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def code_under_test(env: dict[str, str]) -> str:
    """Where the daemon's ``device`` package is imported from with ``env`` (the report says it)."""
    r = subprocess.run(
        [sys.executable, "-c", "import device, os; print(os.path.dirname(device.__file__))"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return r.stdout.strip() or f"(unknown: {r.stderr.strip()[-120:]})"


@dataclass
class DaemonRun:
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    t0: float = 0.0
    """Monotonic time of the soak audio's start (log lines are stamped relative to it)."""
    sample_every_s: float = 5.0
    detections: list[Detection] = field(default_factory=list)
    lines: list[tuple[float, str]] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    exits: list[Exit] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.t0 = self.t0 or time.monotonic()  # until the audio starts, lines are stamped from here
        self.proc: subprocess.Popen | None = None
        self._alive = False
        self._stopping = False
        self._abort_cause = ""
        self._lock = threading.Lock()
        self._log = open(self.log_path, "a", buffering=1)
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample_loop, name="soak-sampler", daemon=True)

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._spawn()
        self._sampler.start()

    def _spawn(self) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "device.cli", *self.argv],
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
        )
        with self._lock:
            self.proc, self._alive = proc, True
            self.starts.append(time.monotonic())
        threading.Thread(target=self._read_stdout, args=(proc.stdout, proc.pid), daemon=True).start()
        threading.Thread(target=self._read_stderr, args=(proc.stderr,), daemon=True).start()
        threading.Thread(target=self._watch, args=(proc,), name="soak-watch", daemon=True).start()

    def _watch(self, proc: subprocess.Popen) -> None:
        # the only wait for this child (never Popen.poll(): that would race this wait4 for its status)
        _, status, ru = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        self._alive = False
        time.sleep(0.2)  # let the readers take the last lines
        last = next((ln for _, ln in reversed(self.lines) if ln.strip()), "")
        cause = "stop" if self._stopping else self._abort_cause or "crash"
        self._abort_cause = ""
        self.exits.append(Exit(time.monotonic(), proc.returncode, cause, ru.ru_utime + ru.ru_stime, last))
        self._note(
            f"[bench] daemon pid {proc.pid} exited with {proc.returncode}"
            f"{'' if cause == 'stop' else f' ({cause}: restarting)'}"
        )
        if cause == "stop":
            self._done.set()
            return
        time.sleep(RESTART_SEC)
        if not self._stopping:
            self._spawn()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, then wait for the exit; False (and SIGKILL) if it did not stop in time."""
        self._stopping = True
        if not self.alive:
            self._done.set()
            return True
        self.signal(signal.SIGTERM)
        if self._done.wait(timeout_s):
            return True
        self.signal(signal.SIGKILL)
        self._done.wait(10)
        return False

    def abort_for_watchdog(self) -> None:
        """What systemd does when ``WatchdogSec`` passes without a ping: SIGABRT (then the restart)."""
        self._abort_cause = "watchdog"
        self.signal(signal.SIGABRT)

    def signal(self, sig: int) -> None:
        proc = self._live_proc()
        if proc is not None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass

    @property
    def stopping(self) -> bool:
        return self._stopping

    def _live_proc(self) -> subprocess.Popen | None:
        """The daemon process while it runs, else None."""
        proc = self.proc
        return proc if proc is not None and self._alive else None

    @property
    def alive(self) -> bool:
        return self._live_proc() is not None

    def close(self) -> None:
        if self.alive:
            self.stop()
        self._done.set()
        self._log.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # -- what it says ----------------------------------------------------------------------
    def _note(self, line: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.lines.append((now, line))
        self._log.write(f"{now - self.t0:10.3f} {line}\n")

    def _read_stderr(self, stream) -> None:
        for raw in stream:
            self._note(raw.rstrip("\n"))

    def _read_stdout(self, stream, pid: int) -> None:
        for raw in stream:
            now = time.monotonic()
            try:
                obj = json.loads(raw)
                self.detections.append(Detection(now, float(obj["time_s"]), float(obj["score"]), pid))
            except (ValueError, KeyError, TypeError):
                self._note(f"[stdout] {raw.rstrip()}")
                continue
            self._note(f"[detection] {raw.strip()}")

    def lines_since(self, t: float, needle: str) -> list[float]:
        with self._lock:
            return [at for at, ln in self.lines if at >= t and needle in ln]

    def wait_for_line(self, needle: str, since: float, timeout_s: float) -> float | None:
        """Monotonic time of the first log line containing ``needle`` after ``since``, waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            hits = self.lines_since(since, needle)
            if hits:
                return hits[0]
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

    def wait_for_detection(self, since: float, timeout_s: float) -> Detection | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [d for d in self.detections if d.at >= since]
            if found:
                return found[0]
            time.sleep(0.02)
        return None

    # -- what it costs ---------------------------------------------------------------------
    def _sample_loop(self) -> None:
        while not self._done.wait(self.sample_every_s):
            self.sample()

    def sample(self) -> None:
        proc = self._live_proc()
        if proc is None:
            return
        mem, cpu = proc_mem_kib(proc.pid), proc_cpu_s(proc.pid)
        # a stopped process (a stall) still has its memory; sample it all the same
        if mem is not None and cpu is not None:
            self.samples.append(Sample(time.monotonic(), proc.pid, mem[0], mem[1], cpu))
