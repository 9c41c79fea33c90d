"""Fixtures shared by every part's tests."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tone_model(tmp_path_factory) -> Path:
    """A real exported ONNX model that fires just after a 1 kHz tone burst (tests/toymodels.py;
    trained once per session, ~10 s)."""
    import torch

    from toymodels import build_tone_model

    torch.set_num_threads(1)
    return build_tone_model(tmp_path_factory.mktemp("model") / "tone.onnx")
