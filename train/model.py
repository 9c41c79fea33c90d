"""The wake-word head: a small streaming network over the pretrained speech embeddings.

    embeddings [B, T, 96] (train.frontend, one every 80 ms)
      -> LayerNorm (per frame) -> Dropout
      -> GRU x layers (unidirectional) -> Dropout
      -> Linear per frame -> logit [B, T]

Only this part is trained; the front end is frozen and shared by every keyword. Each frame
is normalised on its own and the GRUs run forwards only, so :meth:`Head.step` chunk by chunk
with carried state gives the same output as :meth:`Head.forward` on the whole sequence.
The size (``hidden``, ``layers``) was chosen by measurement: docs/experiments.md.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    embed_dim: int = 96
    """Numbers per embedding frame (the front end's output; must equal its width)."""
    hidden: int = 64
    """Hidden units per GRU layer."""
    layers: int = 2
    """Stacked GRU layers."""
    dropout: float = 0.3
    """Drop probability on the normalised input and after the GRUs (training only)."""

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.hidden < 1 or self.layers < 1:
            raise ValueError("embed_dim, hidden and layers must be >= 1")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class Head(nn.Module):
    """Embeddings ``[B, T, embed_dim]`` -> keyword logits ``[B, T]`` (one per 80 ms frame)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.gru = nn.GRU(cfg.embed_dim, cfg.hidden, num_layers=cfg.layers, batch_first=True,
                          dropout=cfg.dropout if cfg.layers > 1 else 0.0)
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, 1)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """All-zero GRU state ``[layers, B, hidden]``."""
        return torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=self.out.weight.device)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        """Whole-sequence logits; equal to :meth:`step` from :meth:`initial_state`."""
        logits, _ = self.step(emb, self.initial_state(emb.shape[0]))
        return logits

    def step(self, emb: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk ``[B, T, embed_dim]`` and the carried state -> ``(logits [B, T], new state)``."""
        x = self.drop(self.norm(emb))
        x, h = self.gru(x, h)
        return self.out(self.drop(x)).squeeze(-1), h
