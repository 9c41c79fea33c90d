"""Shared, session-scoped parts for the export tests: real speech, a tiny detector, its ONNX file."""
from __future__ import annotations

import io
import shutil
import subprocess

import numpy as np
import pytest

from device.params import AudioParams

SENTENCES = [("en-us", "Computer, please turn on the light in the kitchen."),
             ("en-gb+f3", "The weather tomorrow looks bright, with a light breeze from the west.")]


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


def tiny_detector(params: AudioParams, feats_like: np.ndarray, seed: int = 0):
    """An untrained tiny CRNN + front end whose input normalisation fits ``feats_like``'s features,
    so its activations (and probabilities) move with the audio instead of saturating."""
    import torch

    from export.streaming import StreamingDetector
    from train.frontend import features
    from train.model import CRNN, ModelConfig

    torch.manual_seed(seed)
    model = CRNN(ModelConfig(n_mels=params.n_mels, conv_channels=16, conv_kernel=3,
                             stride=params.output_stride, gru_hidden=16, dropout=0.0))
    f = features(feats_like, params)
    with torch.no_grad():
        model.input_norm.running_mean.copy_(torch.from_numpy(f.mean(axis=0)))
        model.input_norm.running_var.copy_(torch.from_numpy(f.var(axis=0) + 1e-3))
        model.head.weight.mul_(4.0)  # spread the probabilities over (0, 1)
    return StreamingDetector(model, params).eval()


@pytest.fixture(scope="session")
def tiny_det(params, speech):
    return tiny_detector(params, speech)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, tiny_det, params):
    """``tiny_det`` exported to ONNX with metadata (path)."""
    from device.modelmeta import ModelMeta
    from export.onnx_export import write_model

    meta = ModelMeta(keyword="tiny", params=params, threshold=0.7, model_version="tiny-test",
                     calibration={"target_fa_per_hour": 0.5}, training={"seed": 0},
                     stream={"default_chunk_samples": params.chunk_samples})
    return write_model(tiny_det, meta, tmp_path_factory.mktemp("tiny") / "model.onnx")
