"""From captured int16 frames to the mono float32 audio the model hears.

Channel pick or mix (a mic array's beam channel, or the mean of several channels), then
streaming resampling to the model's rate with soxr (a proper band-limited resampler, not
decimation, so 48 kHz USB microphones do not alias into the keyword band). The resampler
keeps state between calls, so the output does not depend on how the input was chunked.
"""

from __future__ import annotations

import numpy as np
import soxr


class Downmixer:
    def __init__(self, in_rate_hz: int, channels: int, out_rate_hz: int, use_channels: tuple[int, ...] = ()):
        """``use_channels``: 0-based channels to average (empty = all of them)."""
        bad = [c for c in use_channels if not 0 <= c < channels]
        if bad:
            raise ValueError(
                f"channel(s) {bad} do not exist on a {channels}-channel input "
                f"(channels are numbered 0 to {channels - 1})"
            )
        self.in_rate_hz = in_rate_hz
        self.out_rate_hz = out_rate_hz
        self.channels = channels
        self.use_channels = tuple(use_channels) or tuple(range(channels))
        self._resampler = None
        self.reset()

    def reset(self) -> None:
        """Forget resampler history (after a gap in the input)."""
        self._resampler = (
            None
            if self.in_rate_hz == self.out_rate_hz
            else soxr.ResampleStream(self.in_rate_hz, self.out_rate_hz, 1, dtype="float32")
        )

    def mono(self, data: bytes) -> np.ndarray:
        """Interleaved int16 bytes -> float32 ``[frames]`` at the input rate."""
        x = np.frombuffer(data, "<i2").reshape(-1, self.channels)
        if len(self.use_channels) == 1:
            m = x[:, self.use_channels[0]].astype(np.float32)
        else:
            m = x[:, self.use_channels].astype(np.float32).mean(axis=1)
        return m * np.float32(1 / 32768)

    def process(self, data: bytes, last: bool = False) -> np.ndarray:
        """Next piece of the output stream: float32 ``[n]`` at ``out_rate_hz``. ``last`` flushes."""
        m = self.mono(data)
        if self._resampler is None:
            return m
        return self._resampler.resample_chunk(m, last=last)
