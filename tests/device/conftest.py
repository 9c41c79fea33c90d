"""Fixtures for the device tests: the real tone model, WAV clips, file-backed ALSA microphones."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.tonemodel import tone_clip
from device.wavio import write_wav
from tests.device.daemon_helpers import RATE, AlsaMics, multichannel, to_raw_int16


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> dict[str, Path]:
    """16 kHz mono WAVs, 6 s each: ``pos`` (tones at 1.5 and 4.0 s), ``neg`` (no tone)."""
    d = tmp_path_factory.mktemp("clips")
    out = {"pos": d / "pos.wav", "neg": d / "neg.wav"}
    write_wav(out["pos"], tone_clip(6.0, [1.5, 4.0], seed=1), RATE)
    write_wav(out["neg"], tone_clip(6.0, [], seed=2), RATE)
    return out


@pytest.fixture(scope="session")
def alsa_mics(tmp_path_factory) -> AlsaMics:
    """PCMs ``ww_mono48`` (1 ch), ``ww_quad48`` (4 ch, tone on channel 2), ``ww_neg48`` (4 ch,
    no tone) at 48 kHz, and ``ww_late`` whose file does not exist yet."""
    d = tmp_path_factory.mktemp("alsa")
    names = ["ww_mono48", "ww_quad48", "ww_neg48", "ww_late"]
    conf = d / "asound.conf"
    conf.write_text(
        "".join(
            f'pcm.{n} {{\n  type file\n  slave.pcm "null"\n  file "/dev/null"\n'
            f'  infile "{d / (n + ".raw")}"\n  format "raw"\n}}\n'
            for n in names
        )
    )
    pos = tone_clip(6.0, [1.5, 4.0], seed=4)
    neg = tone_clip(6.0, [], seed=5)
    to_raw_int16(multichannel(pos, 1, 48000, 0), d / "ww_mono48.raw")
    to_raw_int16(multichannel(pos, 4, 48000, 2), d / "ww_quad48.raw")
    to_raw_int16(multichannel(neg, 4, 48000, 2), d / "ww_neg48.raw")
    return AlsaMics(conf, d)
