"""Fixtures for the recording tests."""

from __future__ import annotations

import shutil

import pytest

from tests.record.record_helpers import Word, espeak_word


@pytest.fixture(scope="session")
def word(tmp_path_factory) -> Word:
    """The word "computer" spoken by espeak-ng, resampled to the model rate."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: run scripts/setup.sh test (it installs the Debian package)")
    return espeak_word(tmp_path_factory.mktemp("espeak"))
