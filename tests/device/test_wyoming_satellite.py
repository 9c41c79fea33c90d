"""wyoming-satellite (PyPI 1.0.0, a client nobody here wrote, on its own wyoming 1.4.1) with
`--wake-uri` at our service: its microphone is a command replaying a WAV of the tone at 1x; acting
as Home Assistant we start the satellite and see it begin the voice pipeline on our detection.

The satellite pins another `wyoming` than ours, so it lives in its own venv under `.cache/`
(built once from the package registry, ~15 s)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from wyoming.client import AsyncClient
from wyoming.satellite import RunSatellite

from bench.tonemodel import tone_clip
from deploy.testbed.ssh import free_port

REPO = Path(__file__).resolve().parents[2]
SATELLITE = "wyoming-satellite==1.0.0"
PACE = textwrap.dedent("""
    import sys, time
    data, chunk, sent = open(sys.argv[1], "rb").read(), 2048, 0
    t0 = time.monotonic()
    while True:  # the file at 1x, then silence, like a microphone
        sys.stdout.buffer.write(data[sent:sent + chunk].ljust(chunk, b"\\0"))
        sys.stdout.buffer.flush()
        sent += chunk
        time.sleep(max(0.0, t0 + sent / 32000 - time.monotonic()))
""")


@pytest.fixture(scope="session")
def satellite_python() -> Path:
    venv = REPO / ".cache" / "wyoming-satellite"
    python = venv / "bin" / "python"
    if not (venv / ".complete").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", SATELLITE],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"pip install {SATELLITE} failed:\n{done.stderr[-2000:]}"
        (venv / ".complete").touch()
    return python


def test_satellite_starts_the_pipeline_on_our_detection(tone_model, satellite_python, tmp_path):
    mic = tmp_path / "mic.raw"
    (tone_clip(8.0, [2.0], seed=11) * 32767).astype("<i2").tofile(mic)
    (tmp_path / "pace.py").write_text(PACE)
    wake_port, sat_port = free_port(), free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    service = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "device.cli",
            "wyoming",
            "--model",
            str(tone_model),
            "--uri",
            f"tcp://127.0.0.1:{wake_port}",
        ],
        cwd=REPO,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    satellite = None
    try:
        assert "wyoming wake-word service on" in service.stderr.readline()
        satellite = subprocess.Popen(
            [
                str(satellite_python),
                "-m",
                "wyoming_satellite",
                "--uri",
                f"tcp://127.0.0.1:{sat_port}",
                "--mic-command",
                f"{sys.executable} {tmp_path / 'pace.py'} {mic}",
                "--wake-uri",
                f"tcp://127.0.0.1:{wake_port}",
                "--wake-word-name",
                "tone",
                "--no-zeroconf",
                "--debug",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(tmp_path / "satellite.log", "w"),
        )

        async def home_assistant() -> list[str]:
            for _ in range(100):  # the satellite needs a moment to listen
                try:
                    client = AsyncClient.from_uri(f"tcp://127.0.0.1:{sat_port}")
                    await client.connect()
                    break
                except OSError:
                    await asyncio.sleep(0.2)
            await client.write_event(RunSatellite().event())
            seen = []
            while "run-pipeline" not in seen:
                event = await asyncio.wait_for(client.read_event(), timeout=60)
                assert event is not None, "the satellite hung up"
                seen.append(event.type)
            await client.disconnect()
            return seen

        seen = asyncio.run(home_assistant())
        assert seen[-1] == "run-pipeline"
    finally:
        for proc in (satellite, service):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    log = service.stderr.read()
    assert "detected 'tone'" in log and "Traceback" not in log, log
