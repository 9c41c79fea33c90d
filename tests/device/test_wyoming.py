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
