"""Which dataset split hears which speaker.

``val`` and ``test`` must hear voices that ``train`` never did, or validation measures memory
instead of generalisation. Splitting is by *speaker* (``train.tts.Voice.speaker``), not by
voice name: festival's ``kal_diphone`` and flite's ``kal`` are one person.

- speakers named in ``val_speakers`` / ``test_speakers`` go there;
- the many synthetic speakers of one engine (espeak's variants ``espeak+<variant>``, Kokoro's
  style mixes ``kokoro+<name>``) are shuffled with the seed, per engine, and a fraction of each
  is held out for val and for test;
- speakers in ``split_by_render_speakers`` (piper's single voice) appear in every split with
  separate renders: marked ``BY_RENDER`` and reported as such;
- everyone else is train.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

from train.dataconfig import DataConfig
from train.tts import Voice

SPLITS = ("train", "val", "test")
BY_RENDER = "by-render"
VARIANT_FAMILIES = {"espeak+": 7, "kokoro+": 8}
"""Speaker prefixes of engines with many synthetic speakers -> the salt of their shuffle."""


def assign(voices: Iterable[Voice], cfg: DataConfig) -> dict[str, str]:
    """speaker -> ``train`` | ``val`` | ``test`` | ``BY_RENDER``."""
    speakers = sorted({v.speaker for v in voices})
    out: dict[str, str] = {}
    for family, salt in VARIANT_FAMILIES.items():
        members = [s for s in speakers if s.startswith(family)]
        rng = np.random.default_rng([cfg.seed, salt])
        shuffled = [members[i] for i in rng.permutation(len(members))]
        k = max(1, round(cfg.variant_heldout_fraction * len(members))) if len(members) >= 3 else 0
        for s in shuffled[:k]:
            out[s] = "val"
        for s in shuffled[k : 2 * k]:
            out[s] = "test"
    for s in speakers:
        if s in cfg.split_by_render_speakers:
            out[s] = BY_RENDER
        elif s in cfg.test_speakers:
            out[s] = "test"
        elif s in cfg.val_speakers:
            out[s] = "val"
        else:
            out.setdefault(s, "train")
    return out


def voices_for(split: str, voices: Iterable[Voice], speaker_split: dict[str, str]) -> list[Voice]:
    """The voices a split may render with (its own speakers plus the by-render ones)."""
    return [v for v in voices if speaker_split.get(v.speaker) in (split, BY_RENDER)]


def stable_split(key: str, seed: int, heldout_fraction: float) -> str:
    """A split for one item (a recording file) from a hash of its key: val, test, else train."""
    u = np.random.default_rng([seed, hash_str(key)]).random()
    if u < heldout_fraction:
        return "val"
    if u < 2 * heldout_fraction:
        return "test"
    return "train"


def hash_str(text: str) -> int:
    """Stable across processes (unlike ``hash``)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
