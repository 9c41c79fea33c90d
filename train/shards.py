"""Shards: how a split is stored on disk, and :class:`ClipSet`, how training reads it.

A split directory holds, per shard ``k``::

    shard-<k>.features.npy   float16 [n, frames, 96]      embeddings (train.frontend.SpeechEmbedding), 80 ms frames
    shard-<k>.labels.npy     uint8   [n, frames]          1 = keyword just ended (per output frame)
    shard-<k>.meta.jsonl     one JSON object per clip

Each file is written atomically and the metadata last, so a shard with a ``.meta.jsonl`` is
complete; an interrupted build resumes by redoing the shards without one. Readers memory-map
the ``.npy`` files, so opening a split costs nothing and training reads only what it uses.
"""

from __future__ import annotations

import bisect
import json
from pathlib import Path

import numpy as np

from device.fsutil import atomic_path, atomic_write_text
from device.params import AudioParams


def shard_paths(split_dir: str | Path, k: int) -> tuple[Path, Path, Path]:
    base = Path(split_dir) / f"shard-{k:05d}"
    return (
        base.with_name(base.name + ".features.npy"),
        base.with_name(base.name + ".labels.npy"),
        base.with_name(base.name + ".meta.jsonl"),
    )


def is_complete(split_dir: str | Path, k: int) -> bool:
    return all(p.exists() for p in shard_paths(split_dir, k))


def write_shard(split_dir: str | Path, k: int, features: np.ndarray, labels: np.ndarray, metas: list[dict]) -> None:
    """Write one shard (features float16 ``[n, frames, 96]``, labels uint8 ``[n, frames]``)."""
    if not (len(features) == len(labels) == len(metas)) or features.shape[1] != labels.shape[1]:
        raise ValueError(f"shard {k}: features {features.shape}, labels {labels.shape}, {len(metas)} metas")
    feat_path, label_path, meta_path = shard_paths(split_dir, k)
    for path, array in ((feat_path, features.astype(np.float16)), (label_path, labels.astype(np.uint8))):
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.save(f, array)
    atomic_write_text(meta_path, "".join(json.dumps(m, sort_keys=True) + "\n" for m in metas))


class ClipSet:
    """A dataset split: ``len``, and per clip its features, labels and metadata.

    ``features(i)`` float32 ``[frames, 96]``; ``labels(i)`` float32 ``[frames]`` (0/1 per
    80 ms output frame); ``meta(i)`` dict with ``keywords`` (``start_s``, ``end_s``, ``voice``,
    ``source``...), ``negatives``, ``background``, ``snr_db``...
    """

    def __init__(
        self,
        split_dir: str | Path,
        shard_counts: list[int],
        params: AudioParams,
        keyword: str,
        summary: dict | None = None,
    ):
        self.split_dir = Path(split_dir)
        self._summary = dict(summary or {})
        self.params = params
        self.keyword = keyword
        self._counts = list(shard_counts)
        self._starts = list(np.cumsum([0] + self._counts[:-1])) if self._counts else []
        self._features: dict[int, np.ndarray] = {}
        self._labels: dict[int, np.ndarray] = {}
        self._metas: dict[int, list[dict]] = {}

    def __len__(self) -> int:
        return int(sum(self._counts))

    def _locate(self, i: int) -> tuple[int, int]:
        if not 0 <= i < len(self):
            raise IndexError(f"clip {i} out of range ({len(self)} clips)")
        k = bisect.bisect_right(self._starts, i) - 1
        return k, i - int(self._starts[k])

    def _array(self, cache: dict, k: int, which: int) -> np.ndarray:
        if k not in cache:
            cache[k] = np.load(shard_paths(self.split_dir, k)[which], mmap_mode="r")
        return cache[k]

    def features(self, i: int) -> np.ndarray:
        k, j = self._locate(i)
        return np.asarray(self._array(self._features, k, 0)[j], dtype=np.float32)

    def labels(self, i: int) -> np.ndarray:
        k, j = self._locate(i)
        return np.asarray(self._array(self._labels, k, 1)[j], dtype=np.float32)

    def meta(self, i: int) -> dict:
        k, j = self._locate(i)
        if k not in self._metas:
            text = shard_paths(self.split_dir, k)[2].read_text()
            self._metas[k] = [json.loads(line) for line in text.splitlines() if line.strip()]
        return self._metas[k][j]

    def shard_arrays(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Memory-mapped ``(features float16 [n, frames, 96], labels uint8 [n, frames])`` of shard k,
        for readers that want whole shards at once."""
        return self._array(self._features, k, 0), self._array(self._labels, k, 1)

    def summary(self) -> dict:
        """What a checkpoint should record about this data (seed, build key, voices, counts)."""
        return dict(self._summary)

    @property
    def shard_counts(self) -> list[int]:
        return list(self._counts)
