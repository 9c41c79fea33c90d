"""Where calibration audio comes from, and scoring it through exported models one stream at a time.

A *source* is a callable returning a fresh iterator of :class:`train.streams.Stream` (long
audio with the keyword spans in it, empty for negatives) -- the same streams validation and
the benchmark score. Hours of audio do not fit in memory at once, so :func:`score` keeps only
the probabilities (12.5 floats a second) of each stream.

Sources:

- :func:`folder_source`: a folder of WAV files, each with an optional ``<file>.label.json``
  sidecar in the format of docs/TEAM.md (``keyword_spans``); a WAV without a sidecar, or
  with no spans, is negative audio. The group of a stream is its subfolder (``speech/``,
  ``noise/``, ``clean/`` ...). For the user's own calibration audio, and for tests.
- :func:`heldout_source`: the deterministic evaluation streams the training side builds from
  voices held out of training (``train.streams``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.params import AudioParams
from train.metrics import ScoredStream
from train.streams import Stream

log = logging.getLogger(__name__)

Source = Callable[[], Iterator[Stream]]
"""Groups: e.g. ``"speech"``, ``"noise"`` (negatives) or ``"clean"``, ``"noisy"`` (positives)."""


class CalibrationDataError(ValueError):
    """Calibration audio that is missing or unusable; one plain line."""


def read_wav(path: Path, params: AudioParams) -> np.ndarray:
    """A WAV as float32 mono at ``params.sample_rate`` (channels averaged, resampled with soxr)."""
    import soundfile as sf
    import soxr

    audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    audio = audio.mean(axis=1)
    if rate != params.sample_rate:
        audio = soxr.resample(audio, rate, params.sample_rate)
    return np.ascontiguousarray(audio, np.float32)


def folder_source(root: str | os.PathLike, params: AudioParams) -> Source:
    """Every ``*.wav`` under ``root`` (sorted), labelled by its optional ``.label.json`` sidecar."""
    root = Path(root)
    if not root.is_dir():
        raise CalibrationDataError(f"calibration folder {root} does not exist")
    files = sorted(root.rglob("*.wav"))
    if not files:
        raise CalibrationDataError(f"calibration folder {root} holds no .wav files")

    def streams() -> Iterator[Stream]:
        for path in files:
            spans = _spans(path)
            group = str(path.parent.relative_to(root)) if path.parent != root else ("keyword" if spans else "negative")
            yield Stream(read_wav(path, params), spans, group, str(path.relative_to(root)))

    return streams


def _spans(wav: Path) -> list[tuple[float, float]]:
    """Keyword spans from the sidecar, read by the one label parser (train/label/labels.py)."""
    from train.label.labels import KEYWORD_KINDS, parse

    # docs/TEAM.md writes "<audio>.label.json": accept it with or without the ".wav".
    candidates = [wav.with_name(wav.name + ".label.json"), wav.with_suffix(".label.json")]
    sidecar = next((c for c in candidates if c.is_file()), None)
    if sidecar is None:
        return []
    try:
        label = parse(json.loads(sidecar.read_text()), None)
    except (ValueError, UnicodeDecodeError) as exc:  # bad JSON or a label the format refuses
        raise CalibrationDataError(f"{sidecar}: not a valid label file ({exc})") from None
    return list(label.keyword_spans) if label.kind in KEYWORD_KINDS else []


@dataclass
class Scored:
    """Scored streams of one model, split the way :func:`export.calibrate.calibrate` takes them."""

    negatives: dict[str, list[ScoredStream]] = field(default_factory=dict)
    positives: dict[str, list[ScoredStream]] = field(default_factory=dict)

    def add(self, stream: Stream, probs: np.ndarray, frame_s: float) -> None:
        scored = ScoredStream(probs, frame_s, list(stream.keyword_spans), stream.name, list(stream.ignore_spans))
        side = self.positives if stream.positive else self.negatives
        side.setdefault(stream.group, []).append(scored)


def score(source: Source, steppers: dict, chunk_samples: int | None = None) -> dict[str, Scored]:
    """Run every stream of ``source`` through each stepper (name -> device.engine.Engine), chunk by chunk.

    ``chunk_samples``: the size fed per step; default the models' own ``chunk_samples`` (the
    daemon's own step). Returns name -> :class:`Scored`.
    """
    from export.scoring import stream_probs

    out = {name: Scored() for name in steppers}
    n = 0
    for stream in source():
        for name, stepper in steppers.items():
            params = stepper.meta.params
            probs = stream_probs(stepper, stream.audio, chunk_samples or params.chunk_samples)
            out[name].add(stream, probs, params.output_hop_s)
        n += 1
    if n == 0:
        raise CalibrationDataError("the calibration source produced no streams")
    return out
