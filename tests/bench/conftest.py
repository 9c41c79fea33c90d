"""Fixtures for the benchmark tests: the real tone model and tone test audio (built once)."""
from __future__ import annotations

from pathlib import Path

import pytest

from benchhelpers import tone_sets
from device.params import AudioParams


@pytest.fixture(scope="session")
def tone_model(tmp_path_factory) -> Path:
    """A real exported ONNX model that fires just after a 1 kHz tone burst (tests/toymodels.py)."""
    import torch

    from toymodels import build_tone_model

    torch.set_num_threads(1)
    return build_tone_model(tmp_path_factory.mktemp("model") / "tone.onnx")


@pytest.fixture(scope="session")
def tone_tests(tmp_path_factory):
    """Tone positives and 3 kHz-burst negatives, clean and at 10 dB, as the benchmark's WAVs."""
    return tone_sets(tmp_path_factory.mktemp("streams"), AudioParams())
