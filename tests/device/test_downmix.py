"""Reducing captured frames to model-rate mono: channel pick/mix and streaming resampling."""

from __future__ import annotations

import numpy as np
import pytest
import soxr

from device.downmix import Downmixer


def int16_frames(x: np.ndarray) -> bytes:
    return (np.clip(x, -1, 32767 / 32768) * 32768).round().astype("<i2").tobytes()


def test_pick_one_channel_or_average_several():
    frames = np.array([[0.5, -0.25, 0.0, 0.25]] * 8, np.float32)
    data = int16_frames(frames)
    np.testing.assert_allclose(Downmixer(16000, 4, 16000, (1,)).process(data), -0.25)
    np.testing.assert_allclose(Downmixer(16000, 4, 16000, (0, 3)).process(data), 0.375)
    np.testing.assert_allclose(Downmixer(16000, 4, 16000).process(data), 0.125)
    with pytest.raises(ValueError, match="do not exist"):
        Downmixer(16000, 4, 16000, (4,))


def test_48k_to_16k_is_band_limited_and_chunk_invariant():
    rate_in, rate_out = 48000, 16000
    t = np.arange(rate_in) / rate_in
    # 1 kHz stays; 11 kHz (above the new Nyquist) must not fold back to 5 kHz
    x = (0.3 * np.sin(2 * np.pi * 1000 * t) + 0.3 * np.sin(2 * np.pi * 11000 * t)).astype(np.float32)
    data = int16_frames(x[:, None])

    def stream(block_frames: int) -> np.ndarray:
        m = Downmixer(rate_in, 1, rate_out)
        parts = [m.process(data[i * 2 : (i + block_frames) * 2]) for i in range(0, rate_in, block_frames)]
        return np.concatenate(parts + [m.process(b"", last=True)])

    a, b = stream(1536), stream(101)
    np.testing.assert_array_equal(a, b)
    assert len(a) == rate_out
    spec = np.abs(np.fft.rfft(a[2000:14000] * np.hanning(12000)))
    freqs = np.fft.rfftfreq(12000, 1 / rate_out)
    at = lambda f: spec[np.argmin(np.abs(freqs - f))]  # noqa: E731
    assert at(1000) > 1000 * at(5000)  # no alias of 11 kHz at 16k - 11k = 5 kHz
    # naive decimation (every third sample) would alias it right there
    naive = x[::3][2000:14000]
    nspec = np.abs(np.fft.rfft(naive * np.hanning(12000)))
    assert nspec[np.argmin(np.abs(freqs - 5000))] > 0.5 * nspec[np.argmin(np.abs(freqs - 1000))]
    # and it matches the one-shot resampler
    np.testing.assert_allclose(a, soxr.resample(np.frombuffer(data, "<i2") / 32768, rate_in, rate_out), atol=1e-4)
