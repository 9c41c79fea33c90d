"""The wake-word head: a small streaming network over the pretrained speech embeddings.

    embeddings [B, T, 96] (train.frontend, one every 80 ms)
      -> LayerNorm (per frame) -> Dropout
      -> GRU x layers (unidirectional) -> Dropout
      -> Linear per frame -> logit [B, T]

Only this part is trained; the front end is frozen and shared by every keyword. Each frame
is normalised on its own and the GRUs run forwards only, so :meth:`Head.step` chunk by chunk
with carried state gives the same output as :meth:`Head.forward` on the whole sequence.
The size (``hidden``, ``layers``) was chosen by measurement: docs/experiments.md, "The head's size"
(32 x 1 missed more; 64 x 1 and 128 x 2 were no better over four keywords, 128 x 2 cost 9-13 % more per step).

With ``heads > 1`` (:class:`Heads`) several such heads answer together: the mean of their
probabilities. Training gives each its own seed (``seed + k``: initial weights, batches, masks,
dropout) and its own loss (``forward(members=True)`` on one batch per head), so head ``k`` learns
exactly as a one-head run with that seed would: the model *is* several runs combined (with
``[train] short_heads``, the last of them runs of the short, more regularised recipe). They share
the front end, so the device pays for the tiny heads only.
"""

from __future__ import annotations

from collections.abc import Sequence
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
    heads: int = 3
    """Heads trained side by side, each as its own run (seed + k); the model answers with the
    mean of their logits (:func:`fuse`). Single runs spread widely on real voices with
    the seed and the data draw, and the mean of two was never much worse than its runs' average
    and far better when one was an outlier; the third follows the short recipe (``[train]
    short_heads = 1``): fewer misses averaged over four keywords and two seed pairs, no keyword
    more than a point worse (docs/experiments.md, "A long head and a short head")."""

    def __post_init__(self) -> None:
        if self.embed_dim < 1 or self.hidden < 1 or self.layers < 1:
            raise ValueError("embed_dim, hidden and layers must be >= 1")
        if not 1 <= self.heads <= 8:
            raise ValueError(f"heads must be 1..8, got {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        """A checkpoint's ``model_config``; one that does not name ``heads`` is from before heads
        existed: one head."""
        return cls(**{"heads": 1, **d})


Batches = Sequence[torch.Tensor | None]
"""Training's input: one batch ``[B_k, T_k, embed_dim]`` per head (each head learns on its own;
``None`` for a head that sits this step out)."""


class Head(nn.Module):
    """Embeddings ``[B, T, embed_dim]`` -> keyword logits ``[B, T]`` (one per 80 ms frame).
    One head, whatever ``cfg.heads`` says (:func:`make_head` builds what a config describes)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg = replace(cfg, heads=1)
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

    @property
    def heads(self) -> list[Head]:
        return [self]

    def set_dropout(self, p: float) -> None:
        """Train with dropout ``p`` instead of ``cfg.dropout`` (inference never drops anything)."""
        self.drop.p = p
        if self.cfg.layers > 1:
            self.gru.dropout = p

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        """All-zero GRU state ``[layers, B, hidden]``."""
        return torch.zeros(self.cfg.layers, batch, self.cfg.hidden, device=self.out.weight.device)

    def forward(self, emb, seeds: Sequence[int] | None = None):
        """Whole-sequence logits ``[B, T]``, equal to :meth:`step` from :meth:`initial_state`.
        Given :data:`Batches` instead (training), see :func:`member_logits`."""
        if not isinstance(emb, torch.Tensor):
            return member_logits(self.heads, emb, seeds)
        logits, _ = self.step(emb, self.initial_state(emb.shape[0]))
        return logits

    def step(self, emb: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One chunk ``[B, T, embed_dim]`` and the carried state -> ``(logits [B, T], new state)``."""
        x = self.drop(self.norm(emb))
        x, h = self.gru(x, h)
        return self.out(self.drop(x)).squeeze(-1), h


def fuse(logits):
    """Several heads' logits ``[heads, ...]`` (torch or numpy) as one answer: their mean logit.

    Against the mean of their probabilities (what the model answered before), over ten trained
    models of the four real keywords, clean and at 10 dB, at 0.5 and 1 false accepts per hour: fewer
    real takes missed in 27 of the 40 figures, more in 9, 0.3-0.7 points fewer on average
    (docs/experiments.md, "How the heads answer together"). A head sure that a frame is not the
    keyword now weighs as much as one sure that it is."""
    return logits.mean(0)


class Heads(nn.Module):
    """``cfg.heads`` :class:`Head` s over the same embeddings, answering with :func:`fuse` of their
    logits. Same calls as :class:`Head`; the carried state is theirs stacked:
    ``[heads * layers, B, hidden]``."""

    def __init__(self, cfg: ModelConfig, seed: int | None = None):
        super().__init__()
        self.cfg = cfg
        members = []
        for k in range(cfg.heads):
            if seed is not None:
                torch.manual_seed(seed + k)
            members.append(Head(cfg))
        self.members = nn.ModuleList(members)

    @property
    def heads(self) -> list[Head]:
        """The members, typed (``nn.ModuleList`` hands them out as plain modules; all are :class:`Head`)."""
        return [m for m in self.members if isinstance(m, Head)]

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.cat([m.initial_state(batch) for m in self.heads])

    def forward(self, emb, seeds: Sequence[int] | None = None):
        if not isinstance(emb, torch.Tensor):
            return member_logits(self.heads, emb, seeds)
        logits, _ = self.step(emb, self.initial_state(emb.shape[0]))
        return logits

    def step(self, emb: torch.Tensor, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outs = [m.step(emb, part) for m, part in zip(self.heads, h.split(self.cfg.layers))]
        return fuse(torch.stack([logits for logits, _ in outs])), torch.cat([state for _, state in outs])


def member_logits(
    heads: Sequence[Head], embs: Batches, seeds: Sequence[int] | None = None
) -> list[torch.Tensor | None]:
    """Training's view of a model: head ``k``'s logits on its own batch ``embs[k]`` (its loss is
    taken on them alone; ``None`` where the batch is ``None``), its dropout drawn after
    ``torch.manual_seed(seeds[k])`` when seeds are given. Reached through the model's ``forward``
    so distributed training syncs the gradients."""
    if len(embs) != len(heads) or (seeds is not None and len(seeds) != len(heads)):
        raise ValueError(f"need one batch and one seed per head: {len(heads)} heads, {len(embs)} batches")
    out: list[torch.Tensor | None] = []
    for k, (head, emb) in enumerate(zip(heads, embs)):
        if emb is None:
            out.append(None)
            continue
        if seeds is not None:
            torch.manual_seed(seeds[k])
        out.append(head(emb))
    return out


def make_head(cfg: ModelConfig, seed: int | None = None) -> Head | Heads:
    """The head a :class:`ModelConfig` describes (checkpoints, export and training all build it here).
    ``seed``: head ``k`` starts from the weights ``torch.manual_seed(seed + k)`` gives, as a
    one-head run with seed ``seed + k`` would."""
    if cfg.heads > 1:
        return Heads(cfg, seed)
    if seed is not None:
        torch.manual_seed(seed)
    return Head(cfg)


def combine(states: list[dict]) -> tuple[ModelConfig, dict]:
    """Several trained heads (checkpoint states with the same ``[model]`` but for ``heads``) as one
    :class:`Heads`: its config and state dict -- the mean of separately trained runs."""
    cfgs = [ModelConfig.from_dict(s["model_config"]) for s in states]
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
