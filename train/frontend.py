"""Log-mel front end as a torch module, used for training features *and* inside the
exported ONNX graph, so the Pi cannot compute features differently from training.

The STFT is a strided Conv1d whose kernels are the windowed DFT basis (one output
channel per real/imaginary part of each bin). That exports to a plain ONNX ``Conv``,
runs on every onnxruntime build, and streams exactly: frame ``t`` covers samples
``[t*hop - (window - hop), t*hop + hop)``, i.e. it *ends* at the end of hop ``t``. A whole
clip is left-padded with ``window - hop`` zeros; a stream carries the last
``window - hop`` samples of the previous chunk (initially zeros), so both agree.
"""
from __future__ import annotations

import librosa
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from device.params import AudioParams


def dft_kernels(params: AudioParams) -> np.ndarray:
    """Windowed real DFT basis, ``[2 * n_bins, 1, window_samples]`` float32.

    Rows ``0..n_bins-1`` give the real part, ``n_bins..`` the imaginary part.
    The (periodic) Hann window is centred in the ``n_fft`` frame, as librosa pads it.
    """
    window = np.hanning(params.window_samples + 1)[:-1]
    offset = (params.n_fft - params.window_samples) // 2
    n = np.arange(params.window_samples) + offset
    k = np.arange(params.n_bins)[:, None]
    phase = 2 * np.pi * k * n / params.n_fft
    real = np.cos(phase) * window
    imag = -np.sin(phase) * window
    return np.concatenate([real, imag])[:, None, :].astype(np.float32)


def mel_matrix(params: AudioParams) -> np.ndarray:
    """Mel filterbank ``[n_bins, n_mels]`` float32 (Slaney-normalised, as librosa)."""
    fb = librosa.filters.mel(sr=params.sample_rate, n_fft=params.n_fft, n_mels=params.n_mels,
                             fmin=params.fmin_hz, fmax=params.fmax_hz)
    return fb.T.astype(np.float32)


class LogMel(nn.Module):
    """Audio ``[batch, samples]`` float32 in [-1, 1] -> log-mel ``[batch, frames, n_mels]``.

    ``samples`` must be a whole number of hops; ``frames = samples // hop_samples``.
    No trainable parameters: the kernels are buffers saved with the model.
    """

    def __init__(self, params: AudioParams):
        super().__init__()
        self.params = params
        self.register_buffer("dft", torch.from_numpy(dft_kernels(params)))
        self.register_buffer("mel", torch.from_numpy(mel_matrix(params)))

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """Audio context before the first sample: zeros ``[batch, window - hop]``."""
        return torch.zeros(batch, self.params.context_samples)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        """Whole-clip features, identical to streaming from :meth:`initial_state`."""
        feats, _ = self.step(audio, self.initial_state(audio.shape[0]).to(audio))
        return feats

    def step(self, audio: torch.Tensor, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features of the next chunk. ``context``: the last ``window - hop`` samples seen.

        Returns ``(features [batch, frames, n_mels], new_context)``.
        """
        x = torch.cat([context, audio], dim=1)
        n_bins = self.params.n_bins
        spec = F.conv1d(x.unsqueeze(1), self.dft, stride=self.params.hop_samples)  # [B, 2*bins, T]
        power = spec[:, :n_bins] ** 2 + spec[:, n_bins:] ** 2
        mel = torch.matmul(power.transpose(1, 2), self.mel)  # [B, T, n_mels]; transpose, not reshape
        new_context = x[:, x.shape[1] - self.params.context_samples:]
        return torch.log(mel + self.params.log_floor), new_context


def features(audio: np.ndarray, params: AudioParams) -> np.ndarray:
    """Convenience: one clip (float32 ``[samples]``) -> log-mel ``[frames, n_mels]`` float32.

    Trailing samples short of a whole hop are dropped.
    """
    usable = len(audio) - len(audio) % params.hop_samples
    with torch.no_grad():
        out = LogMel(params)(torch.from_numpy(np.ascontiguousarray(audio[:usable], dtype=np.float32))[None])
    return out[0].numpy()
