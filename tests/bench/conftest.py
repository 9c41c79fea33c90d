"""Fixtures for the benchmark tests: the real tone model and tone test audio (built once)."""

from __future__ import annotations

import pytest

from device.params import AudioParams
from tests.bench.benchhelpers import tone_sets


@pytest.fixture(scope="session")
def tone_tests(tmp_path_factory):
    """Tone positives and 3 kHz-burst negatives, clean and at 10 dB, as the benchmark's WAVs."""
    return tone_sets(tmp_path_factory.mktemp("streams"), AudioParams())
