"""Shared, session-scoped parts for the export tests: real speech, a tiny detector, its ONNX file."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from device.params import AudioParams

SENTENCES = [
    ("en-us", "Computer, please turn on the light in the kitchen."),
    ("en-gb+f3", "The weather tomorrow looks bright, with a light breeze from the west."),
]


@pytest.fixture(scope="session")
def params() -> AudioParams:
    return AudioParams()


@pytest.fixture(scope="session")
def speech(params) -> np.ndarray:
    """About 7 s of real synthetic speech (espeak-ng, two voices), float32 at the model rate."""
    import soundfile as sf
    import soxr

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (scripts/apt-extra.txt lists it for the test profile)")
    parts = []
    for voice, text in SENTENCES:
        wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], capture_output=True, check=True).stdout
        audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
        parts += [soxr.resample(audio, rate, params.sample_rate), np.zeros(params.sample_rate // 4)]
    return np.concatenate(parts).astype(np.float32)


def tiny_detector(params: AudioParams, feats_like: np.ndarray, seed: int = 0, heads: int = 1):
    """An untrained tiny head (the mean of ``heads`` of them) + the real front end, each output layer
    scaled so that its probabilities move with the audio (spread over (0, 1)) instead of sitting near 0.5."""
    import torch

    from export.streaming import StreamingDetector
    from train.model import ModelConfig, make_head

    torch.manual_seed(seed)
    model = make_head(ModelConfig(hidden=16, layers=1, dropout=0.0, heads=heads))
    with torch.no_grad():
        for member in model.heads:
            member.out.weight.mul_(8.0)
    return StreamingDetector(model, params).eval()


def write_tiny_model(
    det, params: AudioParams, path: Path, keyword: str = "tiny", model_version: str = "tiny-test"
) -> Path:
    """``det`` exported to ONNX at ``path`` with the metadata the export tests' models carry."""
    from device.modelmeta import ModelMeta
    from export.onnx_export import write_model

    meta = ModelMeta(
        keyword=keyword,
        params=params,
        threshold=0.7,
        model_version=model_version,
        calibration={"target_fa_per_hour": 0.5},
        training={"seed": 0},
        stream={"default_chunk_samples": params.chunk_samples},
        frontend={"name": "speech_embedding"},
    )
    return write_model(det, meta, path)


@pytest.fixture(scope="session")
def tiny_det(params, speech):
    return tiny_detector(params, speech)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_det, params):
    """``tiny_det`` exported to ONNX with metadata (path)."""
    return write_tiny_model(tiny_det, params, tmp_path_factory.mktemp("tiny") / "model.onnx")


@pytest.fixture(scope="session")
def tone_checkpoint(tmp_path_factory) -> Path:
    """A training checkpoint of the trained tone head (seed 0)."""
    import torch

    from tests.toymodels import write_tone_checkpoint

    torch.set_num_threads(1)
    return write_tone_checkpoint(tmp_path_factory.mktemp("ckpt") / "best.pt")


@pytest.fixture(scope="session")
def calib_dir(tmp_path_factory) -> Path:
    """Calibration streams for the tone model (tone bursts; 3 kHz bursts as negatives)."""
    from tests.toymodels import write_tone_streams

    return write_tone_streams(tmp_path_factory.mktemp("calib"), n_positive=2, n_negative=3, stream_s=30.0)
