"""``wakeword doctor``: check, in plain words, what the daemon needs on this machine.

Each check prints one line -- ``ok``, ``warn`` or ``FAIL`` and what to do about it. Exit
status 0 when nothing failed, 1 otherwise (2 for a bad config, as everywhere). The first check is
the machine itself (a 64-bit OS, Python 3.11+); where it fails, nothing else is checked. In a
deployed release, the next is whether the venv runs the versions its lock pins.
"""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_CONFIG = "/etc/wakeword/config.toml"


class Report:
    def __init__(self, emit: Callable[[str], None] = print):
        self.emit = emit
        self.failed = 0

    def ok(self, what: str) -> None:
        self.emit(f"  ok    {what}")

    def warn(self, what: str) -> None:
        self.emit(f"  warn  {what}")

    def fail(self, what: str) -> None:
        self.failed += 1
        self.emit(f"  FAIL  {what}")


MIN_PYTHON = (3, 11)


def platform_problem(machine: str, pointer_bits: int, python: tuple[int, int]) -> str | None:
    """What makes this machine one the daemon cannot run on, in one line, or None.

    ``machine`` is the kernel's (``uname -m``), ``pointer_bits`` the running Python's: 32 in a
    32-bit userland even on a 64-bit kernel (a 32-bit Raspberry Pi OS on a Pi 4 or 5). onnxruntime
    publishes wheels for 64-bit ARM and x86 Linux only. The same rule as deploy/pi/platform.sh.
    """
    arm = machine.startswith(("arm", "aarch64"))
    if pointer_bits < 64 and arm:
        userland = machine if machine.startswith("arm") else f"a 32-bit userland on the {machine} kernel"
        return (
            f"unsupported Pi: a 32-bit OS ({userland}); onnxruntime publishes no 32-bit ARM wheel: "
            "install the 64-bit Raspberry Pi OS (arm64)"
        )
    if pointer_bits < 64 or machine not in ("aarch64", "arm64", "x86_64", "amd64"):
        return (
            f"unsupported machine: {pointer_bits}-bit {machine}; onnxruntime publishes wheels for "
            "64-bit ARM and x86 only: install the 64-bit Raspberry Pi OS (arm64)"
        )
    if tuple(python) < MIN_PYTHON:
        return (
            f"unsupported Pi: Python {python[0]}.{python[1]}; wakeword needs Python 3.11 or newer: "
            "install the 64-bit Raspberry Pi OS Bookworm or later"
        )
    return None


def check_platform(
    r: Report, machine: str | None = None, pointer_bits: int | None = None, python: tuple[int, int] | None = None
) -> bool:
    """One line on this machine (or the one described); False when the daemon cannot run here."""
    machine = machine or platform.machine()
    pointer_bits = pointer_bits or struct.calcsize("P") * 8
    version = python or (sys.version_info[0], sys.version_info[1])
    why = platform_problem(machine, pointer_bits, version)
    if why:
        r.fail(why)
        return False
    r.ok(f"{pointer_bits}-bit {machine}, Python {version[0]}.{version[1]}")
    return True


def check_lock(r: Report, release: Path | None = None) -> None:
    """Does this Python run the versions the release's lock pins (what the workstation tested)?
    Says nothing outside a deployed release (a checkout has no lock beside its code)."""
    from device import lockfile

    release = release or lockfile.release_dir()
    if release is None:
        return
    lock = release / lockfile.LOCK_NAME
    try:
        text = lock.read_text()
        pins = lockfile.parse(text)
        gpio = release / lockfile.GPIO_LOCK_NAME
        gpio_pins = lockfile.parse(gpio.read_text()) if gpio.is_file() else []
    except (OSError, lockfile.LockError) as exc:
        r.fail(f"cannot read {lock}: {exc}")
        return
    tag = lockfile.this_target()
    if tag not in lockfile.targets(text):
        r.fail(
            f"{lock} has no wheels for this Python and architecture ({tag}; it has "
            f"{' '.join(lockfile.targets(text)) or 'none'}): add it to deploy/lock.py, run make lock, deploy again"
        )
        return
    # rpi-lgpio's lock applies where install.sh took it from pip: compare what is installed of it.
    found = lockfile.differences(pins) + lockfile.differences(gpio_pins, optional=True)
    missing = [d for d in found if " missing " in d]
    if missing:
        r.fail(
            f"packages of the release's lock are missing: {'; '.join(missing)} (deploy again: "
            "install.sh rebuilds the venv)"
        )
    elif found:
        r.warn(
            f"installed versions differ from the release's lock: {'; '.join(found)}: this Pi runs "
            "versions the workstation did not test (deploy again: install.sh rebuilds the venv)"
        )
    else:
        main_pins = ", ".join(f"{p.name} {p.version}" for p in pins if p.name in ("onnxruntime", "numpy"))
        r.ok(f"Python packages match the release's lock ({len(pins)} pinned; {main_pins})")


def check_model(r: Report, cfg):
    from device.engine import Engine, EngineError

    if not cfg.model:
        r.fail('no model configured: set model = "..." in the config or pass --model')
        return None
    try:
        engine = Engine.load(cfg.model, threads=cfg.threads)
    except EngineError as exc:
        r.fail(str(exc))
        return None
    m = engine.meta
    r.ok(
        f"model {cfg.model}: keyword {m.keyword!r}, version {m.model_version or '?'}, "
        f"threshold {m.threshold:.3f}, {m.params.sample_rate} Hz, steps of {m.params.infer_every_s:g} s"
    )
    return engine


def check_audio(r: Report, cfg, listen_s: float = 0.5) -> None:
    from device.capture import Capture, CaptureError, DeviceNotFound, describe_devices

    c = cfg.capture
    if c.device.startswith("file:"):
        from device.wavio import WavError, wav_info

        try:
            wi = wav_info(c.device[len("file:") :])
        except WavError as exc:
            r.fail(str(exc))
            return
        r.warn(
            f"audio comes from a WAV file, not a microphone ({wi.channels} ch, {wi.rate_hz} Hz, "
            f"{wi.duration_s:.1f} s; the daemon stops at its end)"
        )
        return
    try:
        found = describe_devices(quiet=cfg.log_level != "debug")
    except Exception as exc:  # PortAudio itself missing/broken: say so, keep checking the rest
        r.fail(f"PortAudio/PyAudio does not work here: {exc}")
        return
    if not found:
        r.fail(
            "no audio capture devices at all (is the microphone plugged in? `arecord -l` lists cards; "
            "is the service user in the 'audio' group?)"
        )
        return
    cap = Capture(c.device, c.channels, c.rate_hz, c.block_ms)
    try:
        queue = cap.open(queue_s=max(2.0, 4 * listen_s))
    except (DeviceNotFound, CaptureError) as exc:
        r.fail(f"{exc} (`wakeword devices` lists what exists)")
        return
    name = cap.info.name if cap.info is not None else c.device  # open() found the device
    try:
        deadline = time.monotonic() + listen_s + 2.0
        while queue.queued_frames < listen_s * cap.rate_hz and time.monotonic() < deadline:
            time.sleep(0.05)
        got = queue.queued_frames
    finally:
        cap.close()
    if got == 0:
        r.fail(f"{name!r} opens ({cap.channels} ch, {cap.rate_hz} Hz) but delivers no audio")
        return
    for ch in c.use_channels:
        if ch >= cap.channels:
            r.fail(f"use_channels names channel {ch}, but {name!r} was opened with {cap.channels}")
            return
    r.ok(f"audio device {name!r} delivers audio ({cap.channels} ch, {cap.rate_hz} Hz)")


def check_gpio(r: Report, cfg) -> None:
    from device.gpio import GpioError, open_pin, rpi_gpio_available

    g = cfg.gpio
    if g.backend in ("log", "fake"):
        r.warn(f'GPIO backend {g.backend!r}: the LED is not driven (set [gpio] backend = "rpi" on a Pi)')
        return
    why = rpi_gpio_available()
    if why and g.backend == "rpi":
        r.fail(why)
        return
    if why:
        r.warn(f"GPIO backend 'auto' falls back to a logged LED here: {why}")
        return
    chips = sorted(Path("/dev").glob("gpiochip*"))
    unreadable = [str(p) for p in chips if not os.access(p, os.R_OK | os.W_OK)]
    if unreadable:
        r.warn(f"no read/write access to {', '.join(unreadable)} (add the user to the 'gpio' group)")
    try:
        pin = open_pin("rpi", g.pin, g.active_high)
        pin.close()
    except GpioError as exc:
        r.fail(str(exc))
        return
    r.ok(f"GPIO {g.pin} can be driven ({'active high' if g.active_high else 'active low'}, mode {g.mode})")


def check_systemd(r: Report) -> None:
    from device.sdnotify import Notifier

    n = Notifier()
    if n.enabled:
        r.ok(f"systemd notify socket {n.address}")
    else:
        r.ok("not started by systemd (no NOTIFY_SOCKET): fine when run by hand")
    n.close()
    try:
        import systemd.journal  # noqa: F401

        r.ok("systemd-python present: logs go to the journal with their priority")
    except ImportError:
        r.warn("systemd-python missing (apt install python3-systemd): logs go to stderr, which the journal also keeps")


def check_outputs(r: Report, cfg) -> None:
    if cfg.hook.command:
        exe = shlex.split(cfg.hook.command)[0]
        if shutil.which(exe):
            r.ok(f"hook {exe} is executable")
        else:
            r.fail(f"hook {exe} not found or not executable")
    if cfg.save.enabled:
        d = Path(cfg.save.dir)
        probe = d / ".wakeword-doctor"
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            r.fail(f"cannot write saved detections to {d}: {exc.strerror or exc}")
            return
        free_mb = shutil.disk_usage(d).free / 1e6
        (r.ok if free_mb > cfg.save.max_mb else r.warn)(
            f"saving detections to {d} (cap {cfg.save.max_mb:g} MB, {free_mb:.0f} MB free)"
        )


def check_mqtt(r: Report, cfg) -> None:
    """With ``[mqtt] host`` set: can this machine connect to the broker (and is it let in)?"""
    m = cfg.mqtt
    if not m.enabled:
        return
    from device.mqtt import MqttError, check_connection

    try:
        check_connection(m)
    except MqttError as exc:
        r.fail(f"{exc} (detection still works; it retries in the background)")
        return
    r.ok(
        f"MQTT broker {m.host}:{m.port} accepts {m.client_name!r}{' over TLS' if m.tls else ''}; "
        f"Home Assistant discovery under {m.discovery_prefix}/"
    )


def main(args) -> int:
    r = Report()
    if not check_platform(r):  # nothing else can work here (no onnxruntime for it)
        print("1 problem(s) found")
        return 1
    check_lock(r)
    from device import config

    path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    try:
        cfg = config.load(path)
        cfg = config.override(cfg, None, model=args.model)
        cfg = config.override(cfg, "capture", device=args.device)
    except config.ConfigError as exc:
        print(f"  FAIL  {exc}")
        return 2
    r.ok(f"config {path}" if path else "no config file: using the built-in defaults")
    check_model(r, cfg)
    check_audio(r, cfg)
    check_gpio(r, cfg)
    check_systemd(r)
    check_outputs(r, cfg)
    check_mqtt(r, cfg)
    print("all good" if not r.failed else f"{r.failed} problem(s) found")
    return 0 if not r.failed else 1
