"""systemd integration against a real unix datagram socket: the exact bytes of sd_notify, and
the daemon's READY / WATCHDOG / STATUS / STOPPING sequence with a clean SIGTERM, LED off."""

from __future__ import annotations

import os
import signal
import socket
import time

import pytest

from bench.tonemodel import tone_clip
from device.sdnotify import Notifier, setup_logging, watchdog_interval_s
from device.wavio import write_wav
from tests.device.daemon_helpers import RATE, json_lines, popen_wakeword, write_config


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield path, sock
    sock.close()


def recv_all(sock, timeout_s=0.2) -> list[str]:
    out = []
    sock.settimeout(timeout_s)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except (TimeoutError, BlockingIOError):
        return out


def test_notifier_sends_the_exact_messages(notify_socket):
    path, sock = notify_socket
    n = Notifier(path)
    n.ready()
    n.watchdog()
    n.status("listening   on\n'mic'")
    n.status("listening on 'mic'")  # unchanged: not sent again
    n.stopping()
    assert recv_all(sock) == ["READY=1", "WATCHDOG=1", "STATUS=listening on 'mic'", "STOPPING=1"]
    n.close()


def test_notifier_abstract_namespace_and_no_socket():
    name = f"wakeword-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    try:
        Notifier("@" + name).ready()
        sock.settimeout(5)
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()
    off = Notifier("")
    assert not off.enabled and off.notify("READY=1") is False  # a no-op, never an error


def test_watchdog_interval_is_half_of_watchdog_sec(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "10000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval_s() == 5.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval_s() is None


def test_logging_goes_to_stderr_outside_systemd(monkeypatch):
    monkeypatch.delenv("INVOCATION_ID", raising=False)
    assert setup_logging() == "stderr"


@pytest.mark.parametrize("active_high", [True, False])
def test_daemon_notifies_and_sigterm_mid_stream_leaves_the_led_off(tone_model, tmp_path, notify_socket, active_high):
    path, sock = notify_socket
    clip = tmp_path / "long.wav"
    write_wav(clip, tone_clip(30.0, [0.5], seed=11), RATE)
    edges = tmp_path / "edges.txt"
    cfg = write_config(
        tmp_path / "cfg.toml",
        f"""
model = "{tone_model}"
[gpio]
backend = "fake"
pin = 5
active_high = {str(active_high).lower()}
on_s = 60.0
fake_edge_log = "{edges}"
""",
    )
    proc = popen_wakeword(
        ["listen", "--config", str(cfg), "--input", str(clip), "--realtime", "--json"], env={"NOTIFY_SOCKET": path}
    )
    try:
        sock.settimeout(20)
        assert sock.recv(4096) == b"READY=1"  # audio flows
        det = json_lines(proc.stdout.readline())  # the tone at 0.5 s, heard at about 1 s
        assert det and det[0]["keyword"] == "tone"
        time.sleep(0.7)  # one more tick: watchdog and the status line with the detection
        on, off = int(active_high), int(not active_high)
        assert edges.read_text().split()[-1] == str(on)  # the LED is lit (60 s on-time)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    msgs = recv_all(sock)
    assert "WATCHDOG=1" in msgs
    statuses = [m for m in msgs if m.startswith("STATUS=")]
    assert any("1 detection(s)" in s and "file:" in s and "dropped 0.0 s" in s for s in statuses), statuses
    assert msgs[-1] == "STOPPING=1"
    levels = [line.split() for line in edges.read_text().splitlines()]
    assert all(pin == "5" for _, pin, _ in levels)
    assert [lv for _, _, lv in levels] == [str(off), str(on), str(off)]  # setup off, on, off at exit
    assert "Traceback" not in err and f"stopped on signal {int(signal.SIGTERM)}" in err
