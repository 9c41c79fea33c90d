"""``[data] formant_prob``: clips with scaled formants are as reproducible as any other clip, and
datasets built before the option (it off) keep their build key."""

from __future__ import annotations

import numpy as np
import pytest

from device.params import AudioParams
from tests.data.toneclips import tone_entries, tone_sources
from train import clipmaker, datasynth
from train.dataconfig import DataConfig
from train.dataset import _build_key


@pytest.fixture
def entries(tmp_path):
    return tone_entries(tmp_path)


def test_clips_with_scaled_formants_are_the_same_for_the_same_generators(entries):
    cfg = DataConfig(seed=5, clip_s=3.0, formant_prob=1.0, formant_max=1.2, keyword_clip_fraction=1.0)
    src = tone_sources(entries, cfg, users=False)
    ratios = []
    for i in range(6):
        a = clipmaker.make_clip(src, *datasynth.clip_rngs(cfg, "train", i))
        b = clipmaker.make_clip(src, *datasynth.clip_rngs(cfg, "train", i))
        np.testing.assert_array_equal(a.audio, b.audio)
        assert a.meta == b.meta
        ratios += [u["formant_ratio"] for u in a.meta["keywords"] + a.meta["negatives"]]
    assert all(1 / 1.2 - 1e-3 <= r <= 1.2 + 1e-3 for r in ratios) and len(set(ratios)) > 3


def test_the_option_off_leaves_the_build_key_and_the_clips_as_they_were(entries):
    params = AudioParams()
    index = {"entries": entries["tts_kw"]}
    key = lambda cfg: _build_key("computer", cfg, params, index, {})  # noqa: E731
    assert key(DataConfig()) == key(DataConfig(formant_max=1.5))  # off: its range changes nothing
    assert key(DataConfig()) != key(DataConfig(formant_prob=0.5))
    off = DataConfig(seed=5, clip_s=3.0)
    src = tone_sources(entries, off, users=False)
    clip = clipmaker.make_clip(src, *datasynth.clip_rngs(off, "train", 0))
    assert all(u["formant_ratio"] == 1.0 for u in clip.meta["keywords"] + clip.meta["negatives"])
