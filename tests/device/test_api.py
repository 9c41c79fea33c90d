"""device.api.Detector: the daemon's engine and decision rule for a user's own program (real model)."""

from __future__ import annotations

import numpy as np
import pytest

from bench.tonemodel import tone_clip
from device.api import Detector
from device.engine import EngineError
from tests.device.daemon_helpers import multichannel


def _times(dets) -> list[float]:
    return [round(d.time_s, 3) for d in dets]


def _feed_all(det: Detector, audio, piece: int, rate: int | None = None):
    found, scores = [], []
    for start in range(0, len(audio), piece):
        found += det.feed(audio[start : start + piece], rate)
        scores.append(det.scores)
    return found, np.concatenate(scores)


def test_detects_the_tones_whatever_the_piece_size(tone_model):
    audio = tone_clip(6.0, [1.5, 4.0], seed=1)
    det = Detector(tone_model)
    whole, whole_scores = _feed_all(det, audio, len(audio))
    assert len(whole) == 2 and 1.5 < whole[0].time_s < 2.6 and 4.0 < whole[1].time_s < 5.1
    assert det.keyword == "tone" and len(whole_scores) == len(audio) // det.params.output_hop_samples
    for piece in (16, 1000, 7777):
        det.reset()
        found, scores = _feed_all(det, audio, piece)
        assert _times(found) == _times(whole)
        np.testing.assert_allclose(scores, whole_scores, atol=1e-4)
    det.reset()
    assert det.feed(tone_clip(6.0, [], seed=2)) == []


def test_int16_stereo_at_48k_and_bytes_give_the_same_detections(tone_model):
    audio = tone_clip(6.0, [1.5, 4.0], seed=1)
    det = Detector(tone_model)
    reference = _times(det.feed(audio))
    det.reset()
    stereo = (multichannel(audio, 2, 48000, 0) * 32767).astype(np.int16)
    found, _ = _feed_all(det, stereo, 4800, 48000)
    assert len(found) == 2 and all(abs(a - b) <= 0.16 for a, b in zip(_times(found), reference))
    det.reset()
    pcm = (audio * 32767).astype("<i2").tobytes()
    assert _times(det.feed(pcm)) == _times(Detector(tone_model).feed((audio * 32767).astype(np.int16)))


def test_fork_shares_the_model_but_not_the_stream(tone_model):
    a = Detector(tone_model)
    b = a.fork()
    assert b.engine._session is a.engine._session
    a.feed(tone_clip(1.7, [1.5], seed=3))  # a is mid-tone
    assert b.feed(tone_clip(6.0, [], seed=2)) == []  # b never heard it
    assert len(a.feed(tone_clip(1.0, [], seed=4))) == 1


def test_bad_input_is_one_clear_error(tone_model, tmp_path):
    det = Detector(tone_model)
    for bad, match in (
        (np.array([0.0, np.nan], np.float32), "NaN"),
        (np.zeros((2, 2, 2)), "shape"),
        (np.zeros(10, np.int32), "int16 or float"),
        (b"\x00", "pairs"),
    ):
        with pytest.raises(ValueError, match=match):
            det.feed(bad)
    det.feed(np.zeros(1600, np.float32), 16000)
    with pytest.raises(ValueError, match="reset"):
        det.feed(np.zeros(4800, np.float32), 48000)
    with pytest.raises(ValueError, match="sample_rate"):
        Detector(tone_model).feed(np.zeros(10, np.float32), 12.5)
    with pytest.raises(EngineError, match="does not exist"):
        Detector(tmp_path / "nope.onnx")
    assert Detector(tone_model, threshold=0.9).decision.threshold == 0.9
