"""The wake-word network: a streaming CRNN in the shape of the original trigger-word model.

    log-mel [B, T, F] -> BatchNorm (input scaling)
      -> causal Conv1d (kernel K, stride S) -> BatchNorm -> ReLU -> Dropout
      -> GRU -> Dropout -> LayerNorm -> GRU -> Dropout -> LayerNorm
      -> Linear per frame -> logit [B, T / S]

Porting notes (Keras original -> PyTorch):
- Keras ``Dropout(rate)`` drops ``rate`` of the units; ``nn.Dropout(p)`` is the same
  quantity. The original's ``Dropout(0.8)`` therefore drops 80 %, which is a lot for a
  small model; our default is measured, not copied.
- Keras GRUs take ``(batch, time, features)``: we use ``batch_first=True`` everywhere.
- ``TimeDistributed(Dense(1))`` is a ``nn.Linear`` applied to the last axis of
  ``[B, T, H]`` -- no reshape needed.
- Conv1d wants ``[B, channels, time]``: we *transpose* ``[B, T, F]`` to it and back.

Streaming: the convolution is causal (left context only) and the GRUs unidirectional, so
:meth:`CRNN.step` run chunk by chunk with carried state gives the same output as
:meth:`CRNN.forward` on the whole clip (in eval mode). Chunks must be a whole number of
``stride`` feature frames. Normalisation layers are per-frame (BatchNorm in eval mode is
a fixed affine, LayerNorm normalises each frame on its own), so they stream too.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ModelConfig:
    n_mels: int = 40
    """Input features per frame (must equal AudioParams.n_mels)."""
    conv_channels: int = 128
    """Output channels of the Conv1d front layer."""
    conv_kernel: int = 5
    """Conv1d kernel length in feature frames (>= stride)."""
    stride: int = 2
    """Conv1d stride in feature frames (must equal AudioParams.output_stride)."""
    gru_hidden: int = 96
    """Hidden units per GRU layer."""
    dropout: float = 0.2
    """Drop probability after the convolution and after each GRU (training only)."""

    def to_dict(self) -> dict:
        return asdict(self)


class CRNN(nn.Module):
    """Features ``[B, T, n_mels]`` -> keyword logits ``[B, T // stride]`` (one per output frame)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.conv_kernel < cfg.stride:
            raise ValueError("conv_kernel must be >= stride for a causal streaming convolution")
        self.cfg = cfg
        self.input_norm = nn.BatchNorm1d(cfg.n_mels)
        self.conv = nn.Conv1d(cfg.n_mels, cfg.conv_channels, cfg.conv_kernel, stride=cfg.stride)
        self.conv_norm = nn.BatchNorm1d(cfg.conv_channels)
        self.gru1 = nn.GRU(cfg.conv_channels, cfg.gru_hidden, batch_first=True)
        self.norm1 = nn.LayerNorm(cfg.gru_hidden)
        self.gru2 = nn.GRU(cfg.gru_hidden, cfg.gru_hidden, batch_first=True)
        self.norm2 = nn.LayerNorm(cfg.gru_hidden)
        self.drop = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.gru_hidden, 1)

    @property
    def conv_context(self) -> int:
        """Feature frames of left context the convolution needs from the previous chunk."""
        return self.cfg.conv_kernel - self.cfg.stride

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All-zero streaming state: (conv context ``[B, n_mels, K - S]``, h1 ``[1, B, H]``, h2)."""
        device = self.head.weight.device
        return (torch.zeros(batch, self.cfg.n_mels, self.conv_context, device=device),
                torch.zeros(1, batch, self.cfg.gru_hidden, device=device),
                torch.zeros(1, batch, self.cfg.gru_hidden, device=device))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Whole-clip logits; equal to :meth:`step` from :meth:`initial_state`."""
        logits, _ = self.step(feats, self.initial_state(feats.shape[0]))
        return logits

    def step(self, feats: torch.Tensor, state: tuple[torch.Tensor, ...]
             ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One chunk: ``feats [B, T, n_mels]`` (T a multiple of stride) and the carried
        state -> ``(logits [B, T // stride], new_state)``."""
        conv_ctx, h1, h2 = state
        x = self.input_norm(feats.transpose(1, 2))  # [B, F, T]
        x = torch.cat([conv_ctx, x], dim=2)
        new_ctx = x[:, :, x.shape[2] - self.conv_context:]
        x = self.drop(F.relu(self.conv_norm(self.conv(x))))  # [B, C, T/S]
        x, h1 = self.gru1(x.transpose(1, 2), h1)  # [B, T/S, H]
        x = self.norm1(self.drop(x))
        x, h2 = self.gru2(x, h2)
        x = self.norm2(self.drop(x))
        return self.head(x).squeeze(-1), (new_ctx, h1, h2)
