"""Fixtures for the deploy tests: the real tone model and the nspawn test machine's root."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.deploy_helpers import which_or_fail


@pytest.fixture(scope="session")
def nspawn_root() -> Path:
    """The cached Debian root for systemd-nspawn (built on the first run, about a minute; needs root:
    its tests are marked ``needs_root``)."""
    which_or_fail("mmdebstrap", "systemd-nspawn", "ssh", "rsync")
    from deploy.testbed.nspawn import build_root

    return build_root()
