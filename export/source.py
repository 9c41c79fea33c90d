"""Reading the training checkpoint export starts from, with one clear line for every way it can be wrong.

The checkpoint format is the one in docs/TEAM.md ("Checkpoints"): a dict with ``format`` 2,
``keyword``, ``audio_params``, ``model_config``, ``model`` (state dict) and summaries.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from device.params import AudioParams, ParamsError

log = logging.getLogger(__name__)

CHECKPOINT_FORMATS = frozenset({2})
REQUIRED_KEYS = ("format", "keyword", "audio_params", "model_config", "model")


class CheckpointError(ValueError):
    """A missing, unreadable or incompatible checkpoint; the message is one plain line."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    keyword: str
    params: AudioParams
    model_config: dict
    state_dict: dict
    step: int
    metrics: dict
    best: dict
    data_summary: dict
    config: dict

    def training_summary(self) -> dict:
        """What the model file records about its training (``wakeword.training``)."""
        return {
            "checkpoint": str(self.path),
            "step": self.step,
            "validation": self.metrics,
            "best": self.best,
            "data": self.data_summary,
            "seed": self.data_summary.get("seed", self.config.get("train", {}).get("seed")),
            "model_config": self.model_config,
            "config": self.config,
        }


def load_checkpoint(path: str | os.PathLike, keyword: str | None = None) -> Checkpoint:
    """Read and validate ``path``; ``keyword``, when given, must match the checkpoint's."""
    from train import checkpoint

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; run `make train` first")
    try:
        raw = checkpoint.load(path)  # the training side's reader: corrupt files, format
    except checkpoint.CheckpointError as exc:
        raise CheckpointError(str(exc)) from None
    return _validate(raw, path, keyword)


def _validate(raw, path: Path, keyword: str | None) -> Checkpoint:
    if not isinstance(raw, dict) or any(k not in raw for k in REQUIRED_KEYS):
        missing = [k for k in REQUIRED_KEYS if not isinstance(raw, dict) or k not in raw]
        raise CheckpointError(f"{path} is not a wakeword checkpoint (missing {', '.join(missing)})")
    if raw["format"] not in CHECKPOINT_FORMATS:
        raise CheckpointError(
            f"{path} has checkpoint format {raw['format']!r}, export reads "
            f"{', '.join(map(str, sorted(CHECKPOINT_FORMATS)))}; update the code or retrain"
        )
    if keyword is not None and raw["keyword"] != keyword:
        raise CheckpointError(f"{path} was trained for keyword {raw['keyword']!r}, not {keyword!r}")
    for key in ("audio_params", "model_config", "model"):
        if not isinstance(raw[key], dict):
            raise CheckpointError(
                f"{path}: {key} is a {type(raw[key]).__name__}, not a dict; not a wakeword checkpoint"
            )
    try:
        params = AudioParams.from_dict(dict(raw["audio_params"]))
    except (ParamsError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: bad audio parameters: {_first_line(exc)}") from None
    return Checkpoint(
        path=path,
        keyword=str(raw["keyword"]),
        params=params,
        model_config=dict(raw["model_config"]),
        state_dict=raw["model"],
        step=int(raw.get("step", 0)),
        metrics=dict(raw.get("metrics") or {}),
        best=dict(raw.get("best") or {}),
        data_summary=dict(raw.get("data_summary") or {}),
        config=dict(raw.get("config") or {}),
    )


def build_detector(ckpt: Checkpoint):
    """The :class:`~export.streaming.StreamingDetector` (eval mode) the checkpoint describes."""
    from export.streaming import StreamingDetector
    from train.frontend import FrontendError, check_params
    from train.model import ModelConfig, make_head

    try:
        check_params(ckpt.params)
    except FrontendError as exc:
        raise CheckpointError(f"{ckpt.path}: {exc}") from None
    try:
        model = make_head(ModelConfig.from_dict(ckpt.model_config))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{ckpt.path}: bad model config: {_first_line(exc)}") from None
    try:
        model.load_state_dict(ckpt.state_dict)
    except (RuntimeError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(
            f"{ckpt.path}: weights do not fit its model config ({_first_line(exc, skip_header=True)})"
        ) from None
    try:
        return StreamingDetector(model, ckpt.params).eval()
    except (ValueError, FrontendError) as exc:
        raise CheckpointError(f"{ckpt.path}: {_first_line(exc)}") from None


def _first_line(exc: BaseException, skip_header: bool = False) -> str:
    """The informative line of an exception message (torch's state-dict errors span many)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
    if skip_header and len(lines) > 1:
        return lines[1][:200]
    return lines[0][:200]
