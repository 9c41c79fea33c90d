"""What happens on a detection: the LED/buzzer, a journal line, a hook command.

- :class:`Indicator` drives a :class:`device.gpio.Pin` from its own thread, so the
  inference loop never sleeps for an LED: ``pulse`` (on for ``on_s``; a new detection
  restarts the time), ``toggle`` (each detection flips it) or ``pattern`` (buzzer: on, off,
  on, ... durations). :meth:`Indicator.close` always leaves the pin off.
- :class:`HookRunner` starts the configured command without waiting for it, with
  ``WAKEWORD_KEYWORD``, ``WAKEWORD_SCORE`` and ``WAKEWORD_TIME_S`` in its environment;
  a hook that runs longer than ``timeout_s`` is killed; failures are logged.
- :class:`device.mqtt.MqttOutput` (optional) queues the detection for its broker and returns.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device.decision import Detection
from device.gpio import BACKENDS, Pin

if TYPE_CHECKING:
    from device.mqtt import MqttOutput

log = logging.getLogger(__name__)

MODES = ("pulse", "toggle", "pattern")


@dataclass(frozen=True)
class GpioConfig:
    backend: str = "auto"
    """``rpi`` (RPi.GPIO / rpi-lgpio), ``log`` (no hardware, logs the LED), ``fake`` (tests),
    or ``auto`` (rpi when available, else log with a warning)."""
    pin: int = 17
    """BCM number of the LED or buzzer pin (GPIO17 is physical pin 11)."""
    active_high: bool = True
    """True: on drives the pin high (LED from pin to ground via a resistor). False: on drives it low."""
    mode: str = "pulse"
    """``pulse`` (on for ``on_s``), ``toggle`` (each detection flips it) or ``pattern`` (buzzer)."""
    on_s: float = 1.0
    """How long ``pulse`` keeps the LED on (s)."""
    pattern_s: tuple[float, ...] = (0.1, 0.1, 0.1)
    """``pattern`` durations in seconds: on, off, on, ... (ends off)."""
    fake_edge_log: str = ""
    """``fake`` backend only: append ``<monotonic_s> <pin> <level>`` lines to this file."""

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0 <= self.pin <= 53:
            raise ValueError(f"pin must be a BCM GPIO number 0-53, got {self.pin}")
        if self.on_s <= 0:
            raise ValueError(f"on_s must be positive, got {self.on_s}")
        if not self.pattern_s or any(d <= 0 for d in self.pattern_s):
            raise ValueError("pattern_s must be a non-empty list of positive durations")


@dataclass(frozen=True)
class HookConfig:
    command: str = ""
    """Command run on each detection (split like a shell line, not run by a shell); empty = none."""
    timeout_s: float = 10.0
    """A hook still running after this long is killed (s)."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        try:
            shlex.split(self.command)
        except ValueError as exc:
            raise ValueError(f"command cannot be parsed: {exc}") from None


class Indicator:
    def __init__(self, pin: Pin, cfg: GpioConfig):
        self.pin = pin
        self.cfg = cfg
        self._cond = threading.Condition()
        self._pending = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="indicator", daemon=True)
        self._thread.start()

    def trigger(self) -> None:
        with self._cond:
            self._pending += 1
            self._cond.notify_all()

    def _wait(self, timeout_s: float | None) -> bool:
        """Wait up to ``timeout_s`` for a trigger or close; True if one came (consumed)."""
        with self._cond:
            self._cond.wait_for(lambda: self._pending or self._stopping, timeout_s)
            if self._pending and not self._stopping:
                self._pending = 0
                return True
            return False

    def _run(self) -> None:
        while self._wait(None):
            if self.cfg.mode == "toggle":
                self.pin.set(not self.pin.on)
                continue
            steps = (self.cfg.on_s,) if self.cfg.mode == "pulse" else self.cfg.pattern_s
            i = 0
            while i < len(steps) and not self._stopping:
                self.pin.set(i % 2 == 0)
                if self._wait(steps[i]) and self.cfg.mode == "pulse":
                    continue  # a new detection while lit: start the on-time again
                i += 1
            if not self._stopping:
                self.pin.set(False)

    def close(self) -> None:
        """Stop the pattern and leave the pin off (and released). Closing twice is harmless (an
        indicator shared by several keywords)."""
        with self._cond:
            if self._stopping:
                return
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self.pin.close()


HOOK_ENV_DROP = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES")
"""systemd's hand-over to the service itself: a hook must not be able to report READY or feed the watchdog."""
HOOK_STDERR_KEEP = 2000
"""Bytes of a hook's stderr kept for the journal; the rest is read and discarded (never unbounded)."""


class _Hook:
    """One running hook: its process (a session and process-group leader) and a bounded stderr."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.started, self.stderr = proc, time.monotonic(), bytearray()
        self._reader = threading.Thread(target=self._drain, name="hook-stderr", daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        stream = self.proc.stderr  # a pipe: HookRunner.run opens it
        assert stream is not None
        try:
            for chunk in iter(lambda: stream.read(4096), b""):
                room = HOOK_STDERR_KEEP - len(self.stderr)
                if room > 0:
                    self.stderr += chunk[:room]
        except (OSError, ValueError):
            pass

    def kill(self) -> None:
        """The hook and everything it started (its process group)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            self.proc.kill()
        self.proc.wait()

    def first_line(self) -> str:
        self._reader.join(timeout=1.0)
        text = bytes(self.stderr).decode("utf-8", "replace").strip()
        return text.splitlines()[0][:200] if text else ""


class HookRunner:
    def __init__(self, cfg: HookConfig):
        self.argv = shlex.split(cfg.command)
        self.timeout_s = cfg.timeout_s
        self._running: list[_Hook] = []

    def run(self, det: Detection, keyword: str) -> None:
        if not self.argv:
            return
        self.poll()
        env = {k: v for k, v in os.environ.items() if k not in HOOK_ENV_DROP}
        env.update(WAKEWORD_KEYWORD=keyword, WAKEWORD_SCORE=f"{det.score:.4f}", WAKEWORD_TIME_S=f"{det.time_s:.3f}")
        try:
            proc = subprocess.Popen(
                self.argv,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            log.warning("hook %s could not start: %s", self.argv[0], exc.strerror or exc)
            return
        self._running.append(_Hook(proc))

    def poll(self) -> None:
        """Reap finished hooks (logging failures) and kill overdue ones, with what they started."""
        still = []
        for hook in self._running:
            rc = hook.proc.poll()
            if rc is None and time.monotonic() - hook.started > self.timeout_s:
                hook.kill()
                log.warning("hook %s killed after %.0f s (with its child processes)", self.argv[0], self.timeout_s)
            elif rc is None:
                still.append(hook)
            elif rc != 0:
                said = hook.first_line()
                log.warning("hook %s exited with status %d%s", self.argv[0], rc, f": {said}" if said else "")
        self._running = still

    def close(self, wait_s: float = 2.0) -> None:
        deadline = time.monotonic() + wait_s
        for hook in self._running:
            try:
                hook.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                hook.kill()
        self._running = []


@dataclass
class Outputs:
    """Fan-out of one detection to every configured output."""

    keyword: str
    indicator: Indicator | None = None
    hook: HookRunner | None = None
    mqtt: MqttOutput | None = None
    count: int = 0
    last: Detection | None = field(default=None)

    def detection(self, det: Detection) -> None:
        self.count += 1
        self.last = det
        if self.indicator is not None:
            self.indicator.trigger()
        log.info("detected %r at %.2f s (score %.3f)", self.keyword, det.time_s, det.score)
        if self.mqtt is not None:
            self.mqtt.detection(self.keyword, det)
        if self.hook is not None:
            self.hook.run(det, self.keyword)

    def poll(self) -> None:
        if self.hook is not None:
            self.hook.poll()

    def status(self) -> str:
        """What the outputs add to the STATUS line ("" or ``"; MQTT up"``)."""
        return f"; {self.mqtt.status()}" if self.mqtt is not None else ""

    def close(self) -> None:
        if self.indicator is not None:
            self.indicator.close()
        if self.hook is not None:
            self.hook.close()
        if self.mqtt is not None:
            self.mqtt.close()
