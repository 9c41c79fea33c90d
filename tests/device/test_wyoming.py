"""`wakeword wyoming` as a real process, driven by the `wyoming` library's own async client
(what Home Assistant and wyoming-satellite use): describe/info, detections with timestamps,
not-detected, several clients, and garbage from a client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.wake import Detect, Detection

from bench.tonemodel import tone_clip
from tests.device.daemon_helpers import multichannel

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def service(tone_model, tmp_path_factory):
    """The service on a unix socket, with a real sd_notify socket -> (uri, notify socket, process)."""
    d = tmp_path_factory.mktemp("wyoming")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(d / "notify"))
    notify.settimeout(60)
    uri = f"unix://{d / 'ww.sock'}"
    env = {**os.environ, "NOTIFY_SOCKET": str(d / "notify"), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "wyoming", "--model", str(tone_model), "--uri", uri],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        messages = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(notify.recv(4096).decode())
        yield uri, notify, proc, messages
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        notify.close()


def _chunks(audio_int16: np.ndarray, rate: int, channels: int, seconds: float = 0.1):
    n = int(rate * seconds)
    for start in range(0, len(audio_int16), n):
        yield AudioChunk(rate=rate, width=2, channels=channels, audio=audio_int16[start : start + n].tobytes())


async def _session(uri: str, audio_int16: np.ndarray, rate: int, channels: int, names=None) -> list:
    """One client: (detect), audio-start, chunks, audio-stop -> every event the service sent back."""
    client = AsyncClient.from_uri(uri)
    await client.connect()
    try:
        if names is not None:
            await client.write_event(Detect(names=names).event())
        await client.write_event(AudioStart(rate=rate, width=2, channels=channels).event())
        for chunk in _chunks(audio_int16, rate, channels):
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        await client.write_event(Describe().event())  # its answer marks the end of what the stream got
        got = []
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout=60)
            assert event is not None, "the service hung up"
            if Info.is_type(event.type):
                return got
            got.append(event)
    finally:
        await client.disconnect()


def _int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1, 32767 / 32768) * 32768).round().astype("<i2")


def test_ready_status_and_describe(service):
    uri, notify, _, messages = service
    assert any(m.startswith("READY=1") for m in messages)

    async def describe():
        client = AsyncClient.from_uri(uri)
        await client.connect()
        await client.write_event(Describe().event())
        event = await asyncio.wait_for(client.read_event(), timeout=30)
        await client.disconnect()
        return Info.from_event(event)

    info = asyncio.run(describe())
    (program,) = info.wake
    assert [m.name for m in program.models] == ["tone"] and program.models[0].installed
    assert program.models[0].phrase == "tone" and program.models[0].version == "tone-test"
    status = ""
    deadline = time.monotonic() + 30
    while "client" not in status and time.monotonic() < deadline:
        status = notify.recv(4096).decode()
    assert "serving tone on unix://" in status


def test_detections_carry_the_keyword_and_stream_time_and_negatives_get_not_detected(service):
    uri = service[0]
    stereo48 = _int16(multichannel(tone_clip(6.0, [1.5, 4.0], seed=1), 2, 48000, 1))
    got = asyncio.run(_session(uri, stereo48, 48000, 2, names=["tone"]))
    hits = [Detection.from_event(e) for e in got if Detection.is_type(e.type)]
    assert [h.name for h in hits] == ["tone", "tone"]
    assert 1500 < hits[0].timestamp < 2600 and 4000 < hits[1].timestamp < 5100
    got = asyncio.run(_session(uri, _int16(tone_clip(6.0, [], seed=2)), 16000, 1))
    assert [e.type for e in got] == ["not-detected"]


def test_clients_at_once_each_have_their_own_state(service):
    uri = service[0]
    pos, neg = _int16(tone_clip(6.0, [1.5, 4.0], seed=1)), _int16(tone_clip(6.0, [], seed=2))

    async def both():
        return await asyncio.gather(
            _session(uri, pos, 16000, 1), _session(uri, neg, 16000, 1), _session(uri, pos, 16000, 1)
        )

    a, b, c = asyncio.run(both())
    assert sum(Detection.is_type(e.type) for e in a) == 2 == sum(Detection.is_type(e.type) for e in c)
    assert [e.type for e in b] == ["not-detected"]


def test_unknown_name_garbage_and_huge_frames_get_an_error_and_the_service_carries_on(service):
    uri, _, proc, _ = service
    path = uri[len("unix://") :]

    async def raw(data: bytes) -> list[dict]:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(data)
        await writer.drain()
        lines = []
        while True:
            line = await asyncio.wait_for(reader.readline(), timeout=30)
            if not line:
                break
            header = json.loads(line)
            if header.get("data_length"):
                header.setdefault("data", {}).update(json.loads(await reader.readexactly(header["data_length"])))
            lines.append(header)
            if header["type"] == "error":
                break
        writer.close()
        return lines

    for data, code in (
        (b"this is not json\n", "bad-event"),
        (b'{"type": "audio-chunk", "payload_length": 999999999999}\n', "bad-event"),
        (b"x" * 100_000 + b"\n", "bad-event"),
    ):
        (error,) = asyncio.run(raw(data))
        assert error["type"] == "error" and error["data"]["code"] == code, error
    bad_rate = (
        json.dumps(
            {"type": "audio-chunk", "data": {"rate": 0, "width": 2, "channels": 1}, "payload_length": 2}
        ).encode()
        + b"\n\x00\x00"
    )
    (error,) = asyncio.run(raw(bad_rate))
    assert "rate" in error["data"]["text"]

    async def unknown():
        client = AsyncClient.from_uri(uri)
        await client.connect()
        await client.write_event(Detect(names=["jarvis"]).event())
        event = await asyncio.wait_for(client.read_event(), timeout=30)
        await client.disconnect()
        return Error.from_event(event)

    error = asyncio.run(unknown())
    assert error.code == "unknown-wake-word" and "'jarvis'" in error.text and "'tone'" in error.text
    assert proc.poll() is None  # still serving
    got = asyncio.run(_session(uri, _int16(tone_clip(3.0, [1.0], seed=5)), 16000, 1))
    assert [e.type for e in got] == ["detection"]


def test_bad_command_lines_are_one_line(tmp_path, tone_model):
    bad_name = tmp_path / "bad-name.toml"
    bad_name.write_text('[wyoming]\nzeroconf_name = "kitchen.pi"\n')

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "device.cli", "wyoming", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )

    for args, status, words in (
        ((), 2, "no model"),
        (("--model", str(tmp_path / "none.onnx")), 3, "does not exist"),
        (("--model", str(tone_model), "--uri", "http://x"), 2, "tcp://HOST:PORT"),
        (("--model", str(tone_model), "--model", str(tone_model)), 2, "two models"),
        (("--model", str(tone_model), "--config", str(bad_name)), 2, "zeroconf_name 'kitchen.pi' must be"),
    ):
        done = run(*args)
        assert done.returncode == status and words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        done = run("--model", str(tone_model), "--uri", f"tcp://127.0.0.1:{taken.getsockname()[1]}")
    assert done.returncode == 1 and "cannot listen" in done.stderr and "Traceback" not in done.stderr


def test_sigterm_with_a_client_mid_stream_stops_cleanly(tone_model, tmp_path):
    """A satellite stays connected for days: stopping the service must not wait for it."""
    uri = f"unix://{tmp_path / 'ww.sock'}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "wyoming", "--model", str(tone_model), "--uri", uri],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )

    async def connect_and_stop():
        for _ in range(300):
            if (tmp_path / "ww.sock").exists():
                break
            await asyncio.sleep(0.1)
        client = AsyncClient.from_uri(uri)
        await client.connect()
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for chunk in _chunks(_int16(tone_clip(2.0, [], seed=6)), 16000, 1):
            await client.write_event(chunk.event())
        proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(client.read_event(), timeout=30)  # the service hangs up: None

    try:
        assert asyncio.run(connect_and_stop()) is None
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
    assert "Traceback" not in proc.stderr.read()


# -- announced on the network, as Home Assistant's Wyoming integration discovers services ----------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lookup(name: str, timeout_ms: int):
    """What an mDNS browser on loopback resolves ``name`` to (Home Assistant does this on its LAN)."""
    from zeroconf import IPVersion, Zeroconf

    from device.announce import SERVICE_TYPE

    zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
    try:
        return zc.get_service_info(SERVICE_TYPE, f"{name}.{SERVICE_TYPE}", timeout=timeout_ms)
    finally:
        zc.close()


def _start_tcp(tone_model, tmp_path, port: int, *extra: str):
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    proc = subprocess.Popen(
        [sys.executable, "-m", "device.cli", "wyoming", "--model", str(tone_model)]
        + ["--uri", f"tcp://127.0.0.1:{port}", *extra],
        cwd=REPO,
        env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify"), "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    messages: list[str] = []
    while not any(m.startswith("READY=1") for m in messages):
        messages.append(notify.recv(4096).decode())
    return proc, notify


def test_the_service_is_announced_for_home_assistant_and_withdrawn_on_stop(tone_model, tmp_path):
    name = f"wakeword-test-{os.getpid()}"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[wyoming]\nzeroconf_name = "{name}"\n')
    port = _free_port()
    proc, notify = _start_tcp(tone_model, tmp_path, port, "--config", str(cfg))
    try:
        found = _lookup(name, 10000)
        assert found is not None, "no _wyoming._tcp service of that name on the network"
        assert found.port == port and found.parsed_addresses() == ["127.0.0.1"]
        assert found.properties[b"wake"] == b"tone"

        async def describe():  # what Home Assistant does next: ask the address it found
            client = AsyncClient.from_uri(f"tcp://{found.parsed_addresses()[0]}:{found.port}")
            await client.connect()
            await client.write_event(Describe().event())
            event = await asyncio.wait_for(client.read_event(), timeout=30)
            await client.disconnect()
            return Info.from_event(event)

        assert [m.name for m in asyncio.run(describe()).wake[0].models] == ["tone"]
        status = ""
        while "client" not in status:
            status = notify.recv(4096).decode()
        assert f"(announced as '{name}')" in status
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        notify.close()
    err = proc.stderr.read()
    assert f"announced as '{name}'" in err and "Traceback" not in err
    assert _lookup(name, 1500) is None  # withdrawn (goodbye packets), not left to time out


def test_no_zeroconf_announces_nothing(tone_model, tmp_path):
    name = f"wakeword-quiet-{os.getpid()}"
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[wyoming]\nzeroconf_name = "{name}"\n')
    proc, notify = _start_tcp(tone_model, tmp_path, _free_port(), "--config", str(cfg), "--no-zeroconf")
    try:
        assert _lookup(name, 1500) is None
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        notify.close()
    assert "announced" not in proc.stderr.read()


def test_what_is_announced_where():
    from device.announce import check_name, default_name, where

    assert where("unix:///run/wakeword/ww.sock") is None  # a socket file is nothing to announce
    local = where("tcp://127.0.0.1:10400")
    assert local is not None and local.addresses == ("127.0.0.1",) and local.interfaces == ("127.0.0.1",)
    everywhere = where("tcp://0.0.0.0:10400")
    assert everywhere is not None and everywhere.port == 10400 and everywhere.interfaces is None
    assert "127.0.0.1" not in everywhere.addresses  # Home Assistant cannot reach loopback
    assert default_name().startswith("wakeword-") and "." not in default_name()
    for bad in ("", "a.b", "x" * 64, "tab\there"):
        with pytest.raises(ValueError, match="zeroconf_name"):
            check_name(bad)


def test_an_address_that_comes_later_is_announced_then_and_a_failure_is_said_once(monkeypatch, caplog):
    """A Pi whose network comes up after the service: announced at the next refresh."""
    import logging

    from device import announce

    port = _free_port()
    name = f"wakeword-late-{os.getpid()}"
    now = [announce.Where((), port, None)]
    monkeypatch.setattr(announce, "where", lambda uri: now[0])
    caplog.set_level(logging.INFO, logger="wakeword.wyoming")

    async def run():
        a = announce.Announcer(f"tcp://0.0.0.0:{port}", name, ["tone"], "0")
        await a.refresh(100.0)
        await a.refresh(130.0)  # still no address: not said again
        assert a.name is None and a.next_refresh == 130.0 + announce.REFRESH_S
        now[0] = announce.Where(("127.0.0.1",), port, ("127.0.0.1",))
        await a.refresh(160.0)
        assert a.name == name
        found = await asyncio.to_thread(_lookup, name, 10000)
        await a.stop()
        gone = await asyncio.to_thread(_lookup, name, 1500)
        return found, gone

    found, gone = asyncio.run(run())
    assert found is not None and found.port == port and gone is None
    said = [r.getMessage() for r in caplog.records]
    assert sum("no IPv4 address" in m for m in said) == 1
    assert sum(f"announced as '{name}'" in m for m in said) == 1
