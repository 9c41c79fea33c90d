"""Training checkpoints: what they hold, how they are written, and when one may be resumed.

Layout (the contract with export, see docs/TEAM.md)::

    {"format": 2, "keyword", "audio_params": AudioParams.to_dict(), "model_config": ModelConfig.to_dict(),
     "config": <resolved config, all sections>, "model": state_dict, "optimizer", "scheduler",
     "step", "epoch", "rng": {...}, "metrics": {...}, "best": {"metric", "value", "step"},
     "data_summary": {...}}

plus training bookkeeping of our own (``history`` for the plots, ``planned_steps``,
``elapsed_s``). Files are written atomically (temp file + fsync + rename), so a crash or
Ctrl-C leaves the previous checkpoint or the new one, never half of one.

Reading is safe and checked: every member's CRC-32 in the zip container is verified first
(``torch.load`` does not, and a damaged ``last.pt`` used to train on garbage), and the file
is unpickled with ``weights_only=True`` -- tensors and plain values, plus numpy arrays (the
RNG state) -- so a checkpoint cannot run code. Non-finite weights are refused too.
"""

from __future__ import annotations

import logging
import pickle
import threading
import zipfile
from pathlib import Path
from typing import Any

import torch

from device.fsutil import atomic_path

log = logging.getLogger(__name__)

FORMAT = 2
"""2: the head over the pretrained front end (1 was the log-mel CRNN, no longer read)."""

RUNTIME_KEYS = {
    "train": {"max_minutes", "threads", "device", "progress", "plots", "plot_examples", "real_data", "val_every_steps"},
}
"""Config keys that may change between a run and its resumption: they decide how long or
where training runs and what it prints, not what the next step computes."""

ADDED_LATER = {"train": {"short_heads": 0}}
"""Keys added after checkpoints existed whose default is not what a checkpoint without them did:
the value such a checkpoint was trained with (so resuming it under today's default is refused)."""

TRAJECTORY_SECTIONS = ("audio", "model", "train")
"""Config sections whose values shape the training trajectory; a resume must match them."""


_SAFE_GLOBALS_LOCK = threading.Lock()
"""``torch.serialization.safe_globals`` edits one process-wide list and puts the old one back on
exit: two threads loading at once (``make loop``'s two fine-tunes) took each other's allowance away
mid-load, and a sound checkpoint was refused as unsafe. Loads hold this lock."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message is one plain line that says what to do."""


def save(path: str | Path, state: dict[str, Any]) -> Path:
    """Write ``state`` (a dict following the layout above) to ``path`` atomically."""
    state = {"format": FORMAT, **state}
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def _safe_numpy() -> list:
    """The numpy globals an RNG state needs (an array of its dtype), for ``weights_only`` loading."""
    import importlib

    import numpy as np

    try:
        multiarray = importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        multiarray = importlib.import_module("numpy.core.multiarray")
    return [multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint; raises :class:`CheckpointError` for a missing, damaged, unsafe or foreign file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist; train first with `make train`")
    fresh = "delete it to start fresh (or keep training from best.pt: copy it over last.pt)"
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'truncated'}); {fresh}"
        ) from None
    if bad is not None:
        raise CheckpointError(f"{path} is damaged (checksum mismatch in {bad.rsplit('/', 1)[-1]}); {fresh}")
    try:
        with _SAFE_GLOBALS_LOCK, torch.serialization.safe_globals(_safe_numpy()):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds more than weights and plain values (refused: loading it could run "
            f"code; {str(exc).splitlines()[0][:120]}); {fresh}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'truncated'}); {fresh}"
        ) from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(
            f"{path} has checkpoint format {found!r}, this code reads {FORMAT}; delete it to start fresh"
        )
    model = state.get("model")
    if isinstance(model, dict):
        broken = [
            k
            for k, v in model.items()
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())
        ]
        if broken:
            raise CheckpointError(f"{path} holds non-finite weights ({', '.join(broken[:3])}); {fresh}")
    return state


def config_differences(old: dict, new: dict) -> list[str]:
    """Human-readable ``section.key: old -> new`` for every trajectory-relevant difference. A key
    one side does not have counts as its dataclass default (a key added later, at the default that
    keeps the old behaviour, does not stop a resume), or on the old side as :data:`ADDED_LATER` says."""
    import dataclasses

    from train import config

    diffs = []
    for sec in TRAJECTORY_SECTIONS:
        a, b = old.get(sec, {}), new.get(sec, {})
        skip = RUNTIME_KEYS.get(sec, set())
        defaults = {f.name: f.default for f in dataclasses.fields(config.section_class(sec))}
        before = {**defaults, **ADDED_LATER.get(sec, {})}
        for key in sorted((set(a) | set(b)) - skip):
            if a.get(key, before.get(key, "<unset>")) != b.get(key, defaults.get(key, "<unset>")):
                diffs.append(f"{sec}.{key}: {a.get(key, '<unset>')!r} -> {b.get(key, '<unset>')!r}")
    return diffs


def check_resumable(state: dict, keyword: str, config: dict, path: Path, data_summary: dict | None = None) -> None:
    """Refuse (one clear line) to resume a checkpoint whose keyword, config or dataset (its
    build key, when both sides have one) differ from now."""
    problems = []
    if state.get("keyword") != keyword:
        problems.append(f"keyword: {state.get('keyword')!r} -> {keyword!r}")
    problems += config_differences(state.get("config", {}), config)
    old_key = (state.get("data_summary") or {}).get("build_key")
    new_key = (data_summary or {}).get("build_key")
    if old_key and new_key and old_key != new_key:
        problems.append(f"dataset build key: {old_key} -> {new_key} (the dataset was rebuilt differently)")
    if problems:
        shown = "; ".join(problems[:4]) + (f"; and {len(problems) - 4} more" if len(problems) > 4 else "")
        raise CheckpointError(
            f"{path} was trained with a different configuration ({shown}); to start fresh, "
            f"move or delete {path.parent} (or put the old values back to resume)"
        )
