"""A tiny real dataset build (every installed TTS engine, real rooms, real LogMel), shared by
the dataset tests. Seconds, not minutes: 3 s clips, a few dozen renders, one worker."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from train import config, negatives

SMALL_WORDS = (
    "commuter",
    "compute",
    "pewter",
    "come",
    "banana",
    "table",
    "scooter",
    "cute",
    "tomato",
    "calm",
    "mute",
    "computing",
    "beauty",
    "neuter",
    "camp",
)


def tiny_data(root: Path) -> dict:
    """The [data] section of the tiny build; its inputs (recordings, folders) are made under ``root``."""
    rng = np.random.default_rng(0)
    rec = root / "recordings" / "computer"
    (rec / "positive").mkdir(parents=True)
    negdir, bgdir = root / "negatives", root / "backgrounds"
    negdir.mkdir()
    bgdir.mkdir()
    # the user's take: a stereo 44.1 kHz file with a labelled span (a stand-in "word": a chirp)
    t = np.arange(int(1.5 * 44100)) / 44100
    chirp = 0.3 * np.sin(2 * np.pi * (300 + 400 * t) * t) * (t > 0.4) * (t < 1.1)
    sf.write(str(rec / "positive" / "take1.wav"), np.stack([chirp, chirp], 1), 44100)
    (rec / "positive" / "take1.wav.label.json").write_text(
        json.dumps({"version": 1, "kind": "keyword", "keyword_spans": [[0.4, 1.1]], "updated": "2026-01-01T00:00:00Z"})
    )
    sf.write(str(negdir / "hum8k.wav"), 0.2 * np.sin(2 * np.pi * 150 * np.arange(8000) / 8000), 8000)
    (negdir / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEbroken")
    sf.write(str(bgdir / "fan.flac"), (0.05 * rng.standard_normal(5 * 16000)).astype(np.float32), 16000)
    return {
        "train_clips": 12,
        "val_clips": 4,
        "test_clips": 4,
        "shard_clips": 4,
        "clip_s": 3.0,
        "keyword_renders": 16,
        "confusable_count": 6,
        "confusable_renders": 12,
        "speech_renders": 6,
        "rooms": 4,
        "example_pngs": 2,
        "workers": 1,
        "recordings_dir": str(root / "recordings"),
        "negative_dirs": [str(negdir)],
        "background_dirs": [str(bgdir)],
        "packaged_backgrounds": False,  # the same build whatever the machine has installed
    }


def tiny_config(data: dict) -> dict:
    cfg = config.load()
    cfg["data"] = {**cfg["data"], **data}
    return cfg


def toml_of(section: str, values: dict) -> str:
    """A TOML [section] of simple values (JSON spelling is valid TOML for these)."""
    return f"[{section}]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


@pytest.fixture(scope="session")
def tiny_build(tmp_path_factory):
    """-> (build dir, resolved config, manifest) of a finished tiny dataset for keyword "computer"."""
    from train.dataset import build

    root = tmp_path_factory.mktemp("tiny")
    data = tiny_data(root)
    cfg = tiny_config(data)
    mp = pytest.MonkeyPatch()
    mp.setattr(negatives, "word_list", lambda: SMALL_WORDS)  # the full list takes ~10 s to rank
    try:
        manifest = build("computer", root / "build", cfg)
    finally:
        mp.undo()
    return root / "build", cfg, manifest
