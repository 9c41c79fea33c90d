"""One output pin (LED or buzzer) behind a narrow interface: the only module touching RPi.GPIO.

Backends, all with ``set(on: bool)`` (logical: on = LED lit / buzzer sounding, whatever the
wiring) and ``close()`` (off, release):

- ``rpi``: the RPi.GPIO API, BCM numbering. Raspberry Pi OS ships it as python3-rpi.gpio;
  on a Pi 5 (whose GPIO sits behind the RP1 chip) the rpi-lgpio package provides the same
  API over lgpio -- install that instead (they cannot be installed together).
- ``fake``: records every edge with its time (for tests), optionally appending
  ``<monotonic_s> <pin> <level>`` lines to a file so a test can read them from another process.
- ``log``: logs each change (a Pi-less machine, or a dry run).
- ``auto``: ``rpi`` when RPi.GPIO can be imported, else ``log`` with a warning saying so.

Electrical ``level`` is 1 for a high pin; with ``active_high = false`` "on" drives the pin low.
"""

from __future__ import annotations

import logging
import os
import threading
import time

log = logging.getLogger(__name__)

BACKENDS = ("auto", "rpi", "fake", "log")


class GpioError(RuntimeError):
    """The pin could not be set up (one line: what is missing and how to fix it)."""


class Pin:
    """Base: maps logical on/off to an electrical level, remembers the state."""

    def __init__(self, pin: int, active_high: bool = True):
        self.pin = pin
        self.active_high = active_high
        self.on = False

    def level(self, on: bool) -> int:
        return int(on == self.active_high)

    def set(self, on: bool) -> None:
        self.on = bool(on)
        self._write(self.level(on))

    def close(self) -> None:
        self.set(False)

    def _write(self, level: int) -> None:
        raise NotImplementedError


class FakePin(Pin):
    def __init__(self, pin: int, active_high: bool = True, edge_log: str = ""):
        super().__init__(pin, active_high)
        self.edges: list[tuple[float, int]] = []
        """``(time.monotonic(), level)`` for every write, in order."""
        self._edge_log = edge_log
        self._lock = threading.Lock()
        self._write(self.level(False))  # like GPIO.setup(initial=off)

    def _write(self, level: int) -> None:
        with self._lock:
            t = time.monotonic()
            self.edges.append((t, level))
            if self._edge_log:
                with open(self._edge_log, "a") as f:
                    f.write(f"{t:.6f} {self.pin} {level}\n")


class LogPin(Pin):
    def __init__(self, pin: int, active_high: bool = True):
        super().__init__(pin, active_high)

    def _write(self, level: int) -> None:
        log.info("LED (GPIO %d, log backend) %s", self.pin, "on" if self.on else "off")


class RpiPin(Pin):
    def __init__(self, pin: int, active_high: bool = True):
        super().__init__(pin, active_high)
        self._gpio = _import_rpi_gpio()
        try:
            self._gpio.setwarnings(False)
            self._gpio.setmode(self._gpio.BCM)
            self._gpio.setup(pin, self._gpio.OUT, initial=self.level(False))
        except Exception as exc:  # RuntimeError/OSError/lgpio.error depending on the provider
            raise GpioError(
                f"cannot set up GPIO {pin} as an output: {exc} (is the service user in "
                "the 'gpio' group, and is the pin number a BCM number?)"
            ) from None

    def _write(self, level: int) -> None:
        self._gpio.output(self.pin, level)

    def close(self) -> None:
        try:
            self.set(False)
        finally:
            try:
                self._gpio.cleanup(self.pin)
            except Exception:  # already released; nothing more to do on the way out
                pass


def _import_rpi_gpio():
    # lgpio (under rpi-lgpio) writes notification files into its working directory, which is
    # read-only under systemd's ProtectSystem; point it at the unit's RuntimeDirectory.
    if "LG_WD" not in os.environ and os.environ.get("RUNTIME_DIRECTORY"):
        os.environ["LG_WD"] = os.environ["RUNTIME_DIRECTORY"].split(":")[0]
    try:
        import RPi.GPIO as GPIO
    except ImportError as exc:
        raise GpioError(
            f"GPIO backend 'rpi' needs RPi.GPIO ({exc}): install python3-rpi.gpio, or "
            'rpi-lgpio on a Pi 5; or set [gpio] backend = "log"'
        ) from None
    except RuntimeError as exc:  # RPi.GPIO raises this off a Pi ("This module can only be run on a Raspberry Pi!")
        raise GpioError(f"RPi.GPIO cannot run here: {exc}") from None
    return GPIO


def rpi_gpio_available() -> str:
    """Empty string if RPi.GPIO imports, else the reason it does not."""
    try:
        _import_rpi_gpio()
    except GpioError as exc:
        return str(exc)
    return ""


def open_pin(backend: str, pin: int, active_high: bool = True, edge_log: str = "") -> Pin:
    """Make the pin for ``backend`` (see module doc); raises :class:`GpioError`."""
    if backend == "auto":
        why = rpi_gpio_available()
        if why:
            log.warning(
                'no GPIO here (%s); the LED is only logged. Set [gpio] backend = "log" to silence this warning', why
            )
            return LogPin(pin, active_high)
        backend = "rpi"
    if backend == "rpi":
        return RpiPin(pin, active_high)
    if backend == "fake":
        return FakePin(pin, active_high, edge_log)
    if backend == "log":
        return LogPin(pin, active_high)
    raise GpioError(f"unknown GPIO backend {backend!r} (choose from {', '.join(BACKENDS)})")
