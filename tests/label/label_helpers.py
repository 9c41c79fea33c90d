"""Helpers for the labelling tests."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

from device.params import AudioParams
from train.label.server import make_server

RATE = AudioParams().sample_rate


def tone_word(
    duration_s: float, at_s: float, word_s: float, rate: int = RATE, channels: int = 1, seed: int = 0
) -> np.ndarray:
    """Quiet noise with a loud 300 Hz burst of ``word_s`` at ``at_s``: ``[n, channels]`` float32."""
    rng = np.random.default_rng(seed)
    n = round(duration_s * rate)
    x = rng.standard_normal(n) * 0.003
    t = np.arange(round(word_s * rate)) / rate
    i = round(at_s * rate)
    x[i : i + len(t)] += 0.5 * np.sin(2 * np.pi * 300 * t)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


def make_folder(root: Path) -> dict[str, Path]:
    """A recordings folder like the field loop makes: takes, negatives, field clips, and trouble.

    ``take`` (16 kHz mono + take sidecar), ``negative``, ``field`` (48 kHz stereo FLAC + detection
    sidecar), ``corrupt`` (not audio), ``badlabel`` (a WAV whose label file is nonsense).
    """
    kw = root / "computer"
    files = {
        "take": kw / "positive" / "computer-20261124T100000-01.wav",
        "negative": kw / "negative" / "computer-20261124T101000-01.wav",
        "field": kw / "field" / "pi" / "20261124T120000000Z_computer.flac",
        "corrupt": kw / "field" / "pi" / "20261124T120500000Z_computer.wav",
        "badlabel": kw / "field" / "pi" / "20261124T121000000Z_computer.wav",
    }
    for p in files.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    sf.write(files["take"], tone_word(1.0, 0.2, 0.5)[:, 0], RATE, subtype="PCM_16")
    files["take"].with_suffix(".json").write_text(json.dumps({"keyword": "computer", "speech_span_s": [0.2, 0.7]}))
    sf.write(files["negative"], tone_word(1.5, 0.3, 0.8)[:, 0], RATE, subtype="PCM_16")
    sf.write(files["field"], tone_word(3.0, 1.0, 0.6, rate=48000, channels=2), 48000)
    files["field"].with_suffix(".json").write_text(
        json.dumps({"keyword": "computer", "score": 0.93, "detected_at_s": 1.9})
    )
    files["corrupt"].write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt garbage that is not audio" * 3)
    sf.write(files["badlabel"], tone_word(2.0, 0.5, 0.5)[:, 0], RATE, subtype="PCM_16")
    label_of(files["badlabel"]).write_text('{"version": 1, "kind": "keyword", "keyword_spans": [[1.5, 0.2]]}')
    return files


def label_of(audio: Path) -> Path:
    return audio.with_name(audio.name + ".label.json")


@contextmanager
def serving(root: Path) -> Iterator[str]:
    """The labelling server for ``root`` on a free port in a thread; yields its base URL."""
    server = make_server(root, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def http(method: str, url: str, body: object = None, headers: dict | None = None) -> tuple[int, bytes, str]:
    """One request; returns status, body bytes and content type (errors are answers, not raises)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    hdrs = {"Content-Type": "application/json"} if body is not None else {}
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")
