"""The wake-word head: a small streaming network over the pretrained speech embeddings.

    embeddings [B, T, 96] (train.frontend, one every 80 ms)
      -> LayerNorm (per frame) -> Dropout
      -> GRU x layers (unidirectional) -> Dropout
      -> Linear per frame -> logit [B, T]

Only this part is trained; the front end is frozen and shared by every keyword. Each frame
is normalised on its own and the GRUs run forwards only, so :meth:`Head.step` chunk by chunk
with carried state gives the same output as :meth:`Head.forward` on the whole sequence.
The size (``hidden``, ``layers``) was chosen by measurement: docs/experiments.md.

With ``heads > 1`` (:class:`Heads`) several such heads, initialised differently, each learn on
their own (the loss is theirs, averaged: ``forward(members=True)``) and answer together: the
mean of their probabilities. They share the front end, so the device pays for the tiny heads only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

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
    heads: int = 1
    """Heads learning side by side from different initial weights; the model answers with the
    mean of their probabilities (:class:`Heads`)."""

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.hidden < 1 or self.layers < 1:
            raise ValueError("embed_dim, hidden and layers must be >= 1")
        if not 1 <= self.heads <= 8:
            raise ValueError(f"heads must be 1..8, got {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["heads"] == 1:
            del d["heads"]  # what every checkpoint before ``heads`` existed says
        return d


class Head(nn.Module):
    """Embeddings ``[B, T, embed_dim]`` -> keyword logits ``[B, T]`` (one per 80 ms frame)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.norm = nn.LayerNorm(cfg.embed_dim)
        self.gru = nn.GRU(
            cfg.embed_dim,
            cfg.hidden,
            num_layers=cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.drop = nn.Dropout(cfg.dropout)
        self.out = nn.Linear(cfg.hidden, 1)

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """All-zero GRU state ``[layers, B, hidden]``."""
        return torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=self.out.weight.device)

    def forward(self, emb: torch.Tensor, members: bool = False) -> torch.Tensor:
        """Whole-sequence logits; equal to :meth:`step` from :meth:`initial_state`. ``members``:
        each head's own logits, ``[heads, B, T]`` (what training's loss is taken on)."""
        logits, _ = self.step(emb, self.initial_state(emb.shape[0]))
        return logits.unsqueeze(0) if members else logits

    def step(self, emb: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk ``[B, T, embed_dim]`` and the carried state -> ``(logits [B, T], new state)``."""
        x = self.drop(self.norm(emb))
        x, h = self.gru(x, h)
        return self.out(self.drop(x)).squeeze(-1), h


class Heads(nn.Module):
    """``cfg.heads`` :class:`Head` s over the same embeddings, answering with the mean of their
    probabilities (as a logit, so everything downstream is unchanged). Same calls as :class:`Head`;
    the carried state is theirs stacked: ``[heads * layers, B, hidden]``."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        one = ModelConfig(**{**asdict(cfg), "heads": 1})
        self.members = nn.ModuleList(Head(one) for _ in range(cfg.heads))

    @property
    def heads(self) -> list[Head]:
        """The members, typed (``nn.ModuleList`` hands them out as plain modules; all are :class:`Head`)."""
        return [m for m in self.members if isinstance(m, Head)]

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.cat([m.initial_state(batch) for m in self.heads])

    def forward(self, emb: torch.Tensor, members: bool = False) -> torch.Tensor:
        if members:
            return torch.stack([m(emb) for m in self.heads])
        logits, _ = self.step(emb, self.initial_state(emb.shape[0]))
        return logits

    def step(self, emb: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m.step(emb, part) for m, part in zip(self.heads, h.split(self.cfg.layers))]
        probs = torch.stack([torch.sigmoid(logits) for logits, _ in outs]).mean(0)
        return torch.logit(probs, eps=1e-6), torch.cat([state for _, state in outs])


def make_head(cfg: ModelConfig) -> Head | Heads:
    """The head a :class:`ModelConfig` describes (checkpoints, export and training all build it here)."""
    return Heads(cfg) if cfg.heads > 1 else Head(cfg)


def combine(states: list[dict]) -> tuple[ModelConfig, dict]:
    """Several trained heads (checkpoint states with the same ``[model]`` but for ``heads``) as one
    :class:`Heads`: its config and state dict -- the mean of separately trained runs."""
    cfgs = [ModelConfig(**s["model_config"]) for s in states]
    base = replace(cfgs[0], heads=1)
    if any(replace(c, heads=1) != base for c in cfgs):
        raise ValueError("the checkpoints have different [model] settings; only heads may differ")
    weights: dict = {}
    k = 0
    for c, s in zip(cfgs, states):
        for key, value in s["model"].items():
            if c.heads == 1:
                weights[f"members.{k}.{key}"] = value
            else:
                _, i, rest = key.split(".", 2)
                weights[f"members.{k + int(i)}.{rest}"] = value
        k += c.heads
    return replace(base, heads=k), weights
