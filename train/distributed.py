"""Distributed data parallel, or nothing: one small object the training loop talks to.

Under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment) :meth:`Dist.from_env` joins the
process group (gloo on CPU, nccl on GPUs) and :meth:`Dist.wrap` returns a
``DistributedDataParallel`` model whose gradients are averaged across replicas, so every
replica takes the same optimiser step and the parameters stay identical. In a single
process every method is a cheap no-op.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as td
from torch import nn


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    cuda: bool = False
    """nccl needs its collective tensors on the GPU."""

    @classmethod
    def from_env(cls, cuda: bool = False) -> Dist:
        """Join the process group torchrun describes in the environment (if any)."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if cuda else "gloo"
        if cuda:
            torch.cuda.set_device(local % torch.cuda.device_count())
        # A long timeout: the other replicas wait at a barrier while rank 0 validates.
        td.init_process_group(backend, timeout=timedelta(minutes=60))
        return cls(rank, world, local, cuda)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        if not self.active:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    @property
    def _device(self) -> torch.device | None:
        return torch.device("cuda", torch.cuda.current_device()) if self.cuda else None

    def any_of(self, flags: list[bool]) -> list[bool]:
        """Flag ``i`` is true on every replica when it is true on any (e.g. "stop now"); one
        collective call for all flags, so every replica sees the same answer."""
        if not self.active:
            return [bool(f) for f in flags]
        t = torch.tensor([1.0 if f else 0.0 for f in flags], device=self._device)
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return [bool(v > 0) for v in t.tolist()]

    def broadcast_int(self, value: int) -> int:
        """Rank 0's ``value`` on every replica."""
        if not self.active:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self._device)
        td.broadcast(t, src=0)
        return int(t.item())

    def broadcast_object(self, obj):
        """Rank 0's picklable ``obj`` on every replica."""
        if not self.active:
            return obj
        box = [obj]
        td.broadcast_object_list(box, src=0, device=self._device)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            td.barrier()

    def close(self) -> None:
        """Leave the process group. The DDP model sits in a reference cycle, so it (and the
        gloo threads its reducer keeps) would otherwise die during interpreter shutdown, where
        gloo aborts the process ("terminate called without an active exception") after a
        finished run: collect it first, while everything it needs is still alive."""
        if self.active and td.is_initialized():
            gc.collect()
            td.destroy_process_group()
