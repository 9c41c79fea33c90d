"""Tiny utterances (sine tones standing for words, the user's among them) and the split sources a
clip is made from: for the tests of :func:`train.clipmaker.make_clip` and its options."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from device.params import AudioParams
from train import clipmaker
from train.dataconfig import DataConfig
from train.sources import USER_SPEAKER

SR = 16000


def tone_entry(tmp_path, name: str, kind: str, freq: float, user: bool = False) -> dict:
    t = np.arange(int(0.6 * SR)) / SR
    path = tmp_path / f"{name}.wav"
    sf.write(str(path), (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), SR)
    return {
        "path": str(path),
        "kind": kind,
        "split": "train",
        "text": name,
        "voice": name,
        "speaker": USER_SPEAKER if user else f"tts:{name}",
        "engine": "recording" if user else "espeak-ng",
    }


def tone_entries(tmp_path) -> dict[str, list[dict]]:
    return {
        "tts_kw": [tone_entry(tmp_path, f"kw{i}", "keyword", 400 + 50 * i) for i in range(4)],
        "tts_conf": [tone_entry(tmp_path, f"conf{i}", "confusable", 700 + 50 * i) for i in range(4)],
        "speech": [tone_entry(tmp_path, f"speech{i}", "speech", 1200 + 50 * i) for i in range(4)],
        "user_kw": [tone_entry(tmp_path, "take", "keyword", 300, user=True)],
        "user_conf": [tone_entry(tmp_path, "false_accept", "confusable", 900, user=True)],
    }


def tone_sources(e: dict, cfg: DataConfig, users: bool) -> clipmaker.SplitSources:
    return clipmaker.SplitSources(
        "train",
        AudioParams(),
        cfg,
        keywords=e["tts_kw"],
        confusables=e["tts_conf"],
        speech=e["speech"],
        users_keywords=e["user_kw"] if users else [],
        users_confusables=e["user_conf"] if users else [],
    )
