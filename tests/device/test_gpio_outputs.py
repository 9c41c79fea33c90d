"""LED/buzzer driving through the fake GPIO backend (edges with times), and the hook command."""

from __future__ import annotations

import sys
import time

import pytest

from device.decision import Detection
from device.gpio import FakePin, GpioError, LogPin, open_pin
from device.outputs import GpioConfig, HookConfig, HookRunner, Indicator, Outputs


def levels(pin: FakePin) -> list[int]:
    return [lv for _, lv in pin.edges]


def wait_for(cond, timeout_s=5.0):
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def test_pulse_lights_for_on_s_and_a_new_detection_restarts_it():
    pin = FakePin(17)
    ind = Indicator(pin, GpioConfig(backend="fake", mode="pulse", on_s=0.3))
    ind.trigger()
    wait_for(lambda: pin.on)
    time.sleep(0.15)
    ind.trigger()  # still lit: restart the on-time
    wait_for(lambda: not pin.on, 3)
    ind.close()
    t_on = next(t for t, lv in pin.edges if lv == 1)
    t_off = next(t for t, lv in pin.edges if lv == 0 and t > t_on)
    assert t_off - t_on >= 0.3 + 0.15 - 0.02  # the second trigger extended it
    assert levels(pin)[0] == 0 and levels(pin)[-1] == 0


def test_toggle_flips_per_detection_and_close_turns_it_off():
    pin = FakePin(4)
    ind = Indicator(pin, GpioConfig(backend="fake", mode="toggle"))
    ind.trigger()
    wait_for(lambda: pin.on)
    ind.trigger()
    wait_for(lambda: not pin.on)
    ind.trigger()
    wait_for(lambda: pin.on)
    ind.close()
    assert levels(pin) == [0, 1, 0, 1, 0]


def test_buzzer_pattern_and_active_low():
    pin = FakePin(18, active_high=False)
    ind = Indicator(pin, GpioConfig(backend="fake", mode="pattern", pattern_s=(0.05, 0.05, 0.05), active_high=False))
    ind.trigger()
    wait_for(lambda: len(pin.edges) >= 5)
    ind.close()
    # idle high (off for active-low), then on(low) off(high) on(low), off(high)
    assert levels(pin)[:5] == [1, 0, 1, 0, 1] and levels(pin)[-1] == 1
    times = [t for t, _ in pin.edges[1:5]]
    assert all(b - a >= 0.045 for a, b in zip(times, times[1:]))


def test_close_during_a_long_pulse_turns_the_led_off_at_once():
    pin = FakePin(17)
    ind = Indicator(pin, GpioConfig(backend="fake", on_s=60))
    ind.trigger()
    wait_for(lambda: pin.on)
    t0 = time.monotonic()
    ind.close()
    assert time.monotonic() - t0 < 1 and levels(pin)[-1] == 0


def test_fake_edge_log_file(tmp_path):
    log = tmp_path / "edges"
    pin = FakePin(7, edge_log=str(log))
    pin.set(True)
    pin.close()
    assert [line.split()[1:] for line in log.read_text().splitlines()] == [["7", "0"], ["7", "1"], ["7", "0"]]


def test_backend_choice_is_explicit_or_warned(caplog):
    assert isinstance(open_pin("log", 17), LogPin)
    with pytest.raises(GpioError, match="RPi.GPIO"):
        open_pin("rpi", 17)  # no RPi.GPIO on this machine: one clear line
    with caplog.at_level("WARNING"):
        assert isinstance(open_pin("auto", 17), LogPin)
    assert "LED is only logged" in caplog.text


def test_config_rejects_bad_gpio_values():
    for bad in (dict(backend="gpiozero"), dict(mode="blink"), dict(pin=99), dict(on_s=0), dict(pattern_s=())):
        with pytest.raises(ValueError):
            GpioConfig(**bad)


def test_hook_gets_keyword_and_score_in_its_environment(tmp_path):
    out = tmp_path / "hook.txt"
    script = tmp_path / "hook.py"
    script.write_text(
        "import os, sys\nopen(sys.argv[1], 'w').write(' '.join(os.environ[k] for k in "
        "('WAKEWORD_KEYWORD', 'WAKEWORD_SCORE', 'WAKEWORD_TIME_S')))\n"
    )
    hook = HookRunner(HookConfig(command=f"{sys.executable} {script} '{out}'"))
    outputs = Outputs("tone", None, hook)
    outputs.detection(Detection(12.34, 0.9876))
    hook.close(wait_s=10)
    assert out.read_text() == "tone 0.9876 12.340"


def test_a_failing_or_missing_hook_is_logged_not_fatal(caplog, tmp_path):
    with caplog.at_level("WARNING"):
        HookRunner(HookConfig(command=str(tmp_path / "nope"))).run(Detection(1.0, 0.9), "tone")
        slow = HookRunner(HookConfig(command=f"{sys.executable} -c 'import time; time.sleep(30)'", timeout_s=0.2))
        slow.run(Detection(1.0, 0.9), "tone")
        time.sleep(0.4)
        slow.poll()
    assert "could not start" in caplog.text and "killed after" in caplog.text


def test_hooks_cannot_reach_systemd_flood_the_journal_or_leave_children(caplog, tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("NOTIFY_SOCKET", "/run/systemd/notify")
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    seen, pidfile = tmp_path / "env.txt", tmp_path / "child.pid"
    script = tmp_path / "hook.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        f"open({str(seen)!r}, 'w').write(repr([k for k in os.environ if 'NOTIFY' in k or 'WATCHDOG' in k]))\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "sys.stderr.write('boom: ' + 'x' * 20_000_000)\n"  # 20 MB of stderr
        "sys.stderr.flush()\n"
        "time.sleep(60)\n"
    )
    hook = HookRunner(HookConfig(command=f"{sys.executable} {script}", timeout_s=1.0))
    with caplog.at_level("WARNING"):
        hook.run(Detection(1.0, 0.9), "tone")
        deadline = time.monotonic() + 20
        while not pidfile.exists() or not pidfile.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.5)
        hook.poll()
    assert "killed after" in caplog.text and seen.read_text() == "[]"
    assert len(hook._running) == 0
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 10
    while True:  # the grandchild went with the hook's process group
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "the hook's child outlived it"
        time.sleep(0.05)


def test_a_failing_hook_says_why_in_one_line(caplog, tmp_path):
    hook = HookRunner(HookConfig(command=f"{sys.executable} -c \"import sys; sys.exit('no such lamp: kitchen')\""))
    with caplog.at_level("WARNING"):
        hook.run(Detection(1.0, 0.9), "tone")
        hook._running[0].proc.wait(timeout=30)
        hook.poll()
    assert "exited with status 1: no such lamp: kitchen" in caplog.text


def test_rpi_backend_drives_the_rpi_gpio_api(monkeypatch, tmp_path):
    """Against a stand-in ``RPi.GPIO`` module (no GPIO hardware here): BCM numbering, the pin set
    up as an output already off, levels for active-low, released on close; lgpio's notify files
    pointed at the unit's RuntimeDirectory."""
    import types

    calls = []
    gpio = types.SimpleNamespace(
        BCM="BCM",
        OUT="OUT",
        setwarnings=lambda on: calls.append(("setwarnings", on)),
        setmode=lambda mode: calls.append(("setmode", mode)),
        setup=lambda pin, mode, initial: calls.append(("setup", pin, mode, initial)),
        output=lambda pin, level: calls.append(("output", pin, level)),
        cleanup=lambda pin: calls.append(("cleanup", pin)),
    )
    rpi = types.ModuleType("RPi")
    rpi.GPIO = gpio
    monkeypatch.setitem(sys.modules, "RPi", rpi)
    monkeypatch.setitem(sys.modules, "RPi.GPIO", gpio)
    monkeypatch.delenv("LG_WD", raising=False)
    monkeypatch.setenv("RUNTIME_DIRECTORY", str(tmp_path))
    pin = open_pin("auto", 23, active_high=False)
    pin.set(True)
    pin.close()
    assert calls == [
        ("setwarnings", False),
        ("setmode", "BCM"),
        ("setup", 23, "OUT", 1),
        ("output", 23, 0),
        ("output", 23, 1),
        ("cleanup", 23),
    ]
    import os

    assert os.environ["LG_WD"] == str(tmp_path)
