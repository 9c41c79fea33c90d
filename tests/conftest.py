"""Fixtures shared by every part's tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    """A non-root `make test` skips the tiers it cannot run, each with a one-line reason: those
    marked ``needs_root(why)``, and those marked ``needs_program(path, package)`` where the program
    is absent. As root nothing is skipped here: setup installs every program, and a missing one fails."""
    if os.geteuid() == 0:
        return
    for item in items:
        root = item.get_closest_marker("needs_root")
        program = item.get_closest_marker("needs_program")
        if root:
            item.add_marker(pytest.mark.skip(reason=f"needs root: {root.args[0]}"))
        elif program and not Path(program.args[0]).exists():
            path, package = program.args
            item.add_marker(pytest.mark.skip(reason=f"{path} is absent (sudo apt-get install {package})"))


@pytest.fixture(scope="session")
def tone_model(tmp_path_factory) -> Path:
    """A real exported ONNX model that fires just after a 1 kHz tone burst (bench/tonemodel.py;
    trained once per session, ~10 s)."""
    import torch

    from bench.tonemodel import build_tone_model

    torch.set_num_threads(1)
    return build_tone_model(tmp_path_factory.mktemp("model") / "tone.onnx")
