"""``python -m tests.train.fakerun <train.train arguments>``: the real training CLI, but on the
in-memory tone dataset of :mod:`tests.train.fakedata` instead of ``<build>/dataset``.

Used by tests that need a real process (SIGINT, torchrun): everything except where the clips
come from is the production code path. With ``FAKERUN_DUMP=<dir>`` each process also saves
its replica's final parameters as ``<dir>/rank<r>.pt`` (to check that replicas agree).
:data:`TINY` holds the ``--set`` overrides of a tiny run, for these tests and the in-process ones.
"""

import functools
import os
import sys
from pathlib import Path

import torch

import train.train as training
from tests.train.fakedata import ToneClips

N_TRAIN, N_VAL = 48, 12
TINY = [
    "model.hidden=16",
    "model.layers=1",
    "train.batch_size=8",
    "train.real_data=off",
    "train.max_minutes=0",
    "train.warmup_steps=4",
    "train.lr=0.01",
    "train.progress=false",
    "train.threads=1",
    "train.plots=false",
]
"""``--set`` overrides for a tiny, quick run on the tone data: a small model, no real data, no plots, one thread."""


@functools.lru_cache(maxsize=4)
def fake_open_data(dataset_dir, params, keyword):
    return ToneClips(N_TRAIN, seed=1, params=params, keyword=keyword), ToneClips(
        N_VAL, seed=2, params=params, keyword=keyword
    )


def _dumping(loop, folder: Path):
    def wrapped(trainer, *args, **kwargs):
        status = loop(trainer, *args, **kwargs)
        torch.save(trainer.model.state_dict(), folder / f"rank{trainer.dist.rank}.pt")
        return status

    return wrapped


if __name__ == "__main__":
    training.open_data = fake_open_data
    if os.environ.get("FAKERUN_DUMP"):
        training.loop = _dumping(training.loop, Path(os.environ["FAKERUN_DUMP"]))
    sys.exit(training.main(sys.argv[1:]))
