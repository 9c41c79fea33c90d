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

import logging
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
    """Keyword spans from the sidecar, read by the one label reader (train/label/labels.py); a bad
    sidecar stops calibration, since a keyword counted as negative audio would move the threshold."""
    from train.label.labels import KEYWORD_KINDS, LabelError, load_label

    try:
        label = load_label(wav)
    except LabelError as exc:
        raise CalibrationDataError(f"{wav.parent}/{exc}: not a valid label file") from None
    if label is None and wav.with_suffix(".label.json").is_file():
        raise CalibrationDataError(
            f"{wav.with_suffix('.label.json')}: rename it to {wav.name}.label.json (the label file is named "
            "after the whole audio file name, docs/TEAM.md)"
        )
    return list(label.keyword_spans) if label is not None and label.kind in KEYWORD_KINDS else []


@contextmanager
def replayed(source: Source, folder: Path) -> Iterator[Source]:
    """``source``, whose first whole pass is kept under ``folder`` (one ``.npz`` per stream, audio as
    16-bit PCM, as :func:`train.streams.save_streams` caches streams) and replayed by every later
    pass. The head choice, the parity check and the calibration then score the same audio, and the
    hours of rendered speech are synthesised once. Every pass yields the stored (16-bit) audio, so
    the first and a replayed pass are the same streams. ``folder`` is emptied before and removed after."""
    from train.streams import load_streams, save_streams

    folder = Path(folder)
    complete = folder / "complete"
    shutil.rmtree(folder, ignore_errors=True)  # left by an export that was stopped

    def streams() -> Iterator[Stream]:
        if complete.is_file():
            for k in range(int(complete.read_text())):
                yield load_streams(folder / f"{k:06d}.npz")[0]
            return
        folder.mkdir(parents=True, exist_ok=True)
        n = 0
        for n, stream in enumerate(source(), start=1):
            path = folder / f"{n - 1:06d}.npz"
            save_streams(path, [stream])
            yield load_streams(path)[0]
        complete.write_text(str(n))

    try:
        yield streams
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
