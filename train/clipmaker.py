"""One labelled training clip: utterances augmented, placed, mixed over a background.

:func:`make_clip` is deterministic for its generators and :class:`SplitSources`; the dataset
builder gives clip ``i`` of a split the generators ``default_rng([seed, split, i])`` (and
``[seed, split, i, 1]`` for the picks of the user's own audio), so a
clip's content does not depend on which worker made it or whether the build was resumed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import soundfile as sf

from device.params import AudioParams
from train import augment, backgrounds, synth
from train.dataconfig import DataConfig


@dataclass
class SplitSources:
    """Everything one split's clips are made from (picklable: sent to each worker once)."""

    split: str
    params: AudioParams
    cfg: DataConfig
    keywords: list[dict]
    """Index entries (``train.sources``) with an absolute ``path``."""
    confusables: list[dict]
    speech: list[dict]
    background_files: list[tuple[str, float]] = field(default_factory=list)
    rirs: list[np.ndarray] = field(default_factory=list)
    users_keywords: list[dict] = field(default_factory=list)
    """The user's own keyword audio, drawn for ``cfg.recording_share`` of keyword picks
    (kept out of ``keywords`` then)."""
    users_confusables: list[dict] = field(default_factory=list)
    """The user's own non-keyword audio, drawn for ``cfg.recording_share`` of confusable picks."""


def _favour_users(users: list[dict], share: float, entry: dict | None, pick_rng: np.random.Generator) -> dict | None:
    """``entry`` (drawn from the synthetic pool), or one of the user's own utterances for a
    ``share`` of draws -- always when there was nothing to draw (``entry`` None). ``pick_rng`` is
    separate from the clip's generator, so every clip that draws no user audio is the very clip a
    build without it would make."""
    if not users:
        return entry
    if entry is None or pick_rng.random() < share:
        return users[int(pick_rng.integers(len(users)))]
    return entry


@dataclass
class Clip:
    audio: np.ndarray
    """float32 ``[clip_samples]``, peak below 0 dBFS."""
    labels: np.ndarray
    """uint8 ``[frames]`` per output frame (80 ms)."""
    meta: dict


@functools.lru_cache(maxsize=3000)
def load_utterance(path: str) -> np.ndarray:
    audio, _ = sf.read(path, dtype="float32")
    return audio


def _augment(entry: dict, src: SplitSources, rng: np.random.Generator) -> tuple[np.ndarray, int, dict]:
    """-> (wet audio, dry length in samples, what was done)."""
    cfg, sr = src.cfg, src.params.sample_rate
    audio = load_utterance(entry["path"])
    speed = float(rng.uniform(cfg.speed_min, cfg.speed_max))
    audio = augment.change_speed(audio, speed, sr)
    semitones = float(rng.uniform(-cfg.pitch_semitones, cfg.pitch_semitones)) if rng.random() < cfg.pitch_prob else 0.0
    audio = augment.shift_pitch(audio, semitones, sr)
    formant = 1.0
    if cfg.formant_prob > 0 and rng.random() < cfg.formant_prob:  # no draw when off: datasets stay as they were
        formant = float(np.exp(rng.uniform(-np.log(cfg.formant_max), np.log(cfg.formant_max))))
        audio = augment.shift_formants(audio, formant, sr, seed=int(rng.integers(2**31)))
    gain_db = float(rng.uniform(-cfg.gain_db, cfg.gain_db))
    audio = audio * np.float32(10 ** (gain_db / 20))
    dry = len(audio)
    room = None
    if src.rirs and rng.random() < cfg.reverb_prob:
        room = int(rng.integers(len(src.rirs)))
        audio = augment.add_reverb(audio, src.rirs[room], sr)
    info = {
        "voice": entry["voice"],
        "source": entry["path"].rsplit("/sources/", 1)[-1],
        "text": entry["text"],
        "speed": round(speed, 3),
        "pitch_semitones": round(semitones, 2),
        "formant_ratio": round(formant, 3),
        "gain_db": round(gain_db, 1),
        "room": room,
    }
    return audio, dry, info


def _pick_negatives(src: SplitSources, rng: np.random.Generator, pick_rng: np.random.Generator) -> list[dict]:
    n = int(rng.integers(0, src.cfg.max_negatives_per_clip + 1))
    out = []
    for _ in range(n):
        confusable = rng.random() < src.cfg.confusable_fraction or not src.speech
        pool = (src.confusables if confusable else src.speech) or src.speech
        entry = pool[int(rng.integers(len(pool)))] if pool else None
        if confusable:
            entry = _favour_users(
                src.users_confusables, src.cfg.recording_share, entry if src.confusables else None, pick_rng
            )
        if entry is not None:
            out.append(entry)
    return out


def make_clip(src: SplitSources, rng: np.random.Generator, pick_rng: np.random.Generator) -> Clip:
    """A clip of ``clip_s`` seconds with its per-output-frame labels and metadata. ``pick_rng``
    draws which picks are the user's own audio (see :class:`SplitSources`)."""
    cfg, params = src.cfg, src.params
    n = synth.clip_samples_for(cfg.clip_s, params)
    window = params.label_window_frames * params.output_hop_samples
    n_kw = (
        int(rng.integers(1, cfg.max_keywords_per_clip + 1))
        if (src.keywords or src.users_keywords) and rng.random() < cfg.keyword_clip_fraction
        else 0
    )
    chosen = []
    for _ in range(n_kw):
        entry = src.keywords[int(rng.integers(len(src.keywords)))] if src.keywords else None
        picked = _favour_users(src.users_keywords, cfg.recording_share, entry, pick_rng)
        assert picked is not None  # n_kw > 0 only with keywords or the user's keywords to draw from
        chosen.append(("keyword", picked))
    chosen += [(e["kind"], e) for e in _pick_negatives(src, rng, pick_rng)]
    parts = [(kind, *_augment(entry, src, rng)) for kind, entry in chosen]
    items = [synth.Item(len(wet), dry + window if kind == "keyword" else 0) for kind, wet, dry, _ in parts]
    placement = synth.place(n, items, rng)

    fg = np.zeros(n, dtype=np.float32)
    active = np.zeros(n, dtype=bool)
    ends, kw_meta, neg_meta = [], [], []
    for (kind, wet, dry, info), start in zip(parts, placement.starts):
        if start is None:
            continue
        fg[start : start + len(wet)] += wet
        active[start : start + dry] = True
        info = {
            **info,
            "start_s": round(start / params.sample_rate, 4),
            "end_s": round((start + dry) / params.sample_rate, 4),
            "start_sample": start,
            "end_sample": start + dry,
        }
        if kind == "keyword":
            ends.append(start + dry)
            kw_meta.append(info)
        else:
            neg_meta.append({**info, "kind": kind})
    labels = synth.keyword_labels(ends, params.frames_for(n), params)
    audio, mix_meta = _mix(fg, active, src, rng, n)
    meta = {
        "keywords": sorted(kw_meta, key=lambda m: m["start_s"]),
        "negatives": sorted(neg_meta, key=lambda m: m["start_s"]),
        "skipped": placement.skipped,
        **mix_meta,
    }
    return Clip(audio, labels, meta)


def _mix(
    fg: np.ndarray, active: np.ndarray, src: SplitSources, rng: np.random.Generator, n: int
) -> tuple[np.ndarray, dict]:
    cfg, params = src.cfg, src.params

    def babble_voices(k: int) -> list[np.ndarray]:
        pool = src.speech + src.confusables
        return [load_utterance(pool[int(rng.integers(len(pool)))]["path"]) for _ in range(k)] if pool else []

    bg = backgrounds.draw(n, params, rng, src.background_files, babble_voices)
    quiet = rng.random() < cfg.quiet_fraction
    snr_db = float(rng.uniform(40, 60) if quiet else rng.uniform(cfg.snr_min_db, cfg.snr_max_db))
    speech_rms = float(np.sqrt(np.mean(np.square(fg[active], dtype=np.float64)))) if active.any() else 0.1
    mix = fg + augment.scale_to_snr(speech_rms, bg.audio, snr_db)
    coloured = rng.random() < cfg.eq_prob
    if coloured:
        mix = augment.colour(mix, params.sample_rate, rng)
    # Microphone resonances and low source rates act on the whole clip (keyword, other speech
    # and background alike), so they never tell the keyword apart.
    mic_eq = rng.random() < cfg.mic_eq_prob
    if mic_eq:
        mix = augment.mic_eq(mix, params.sample_rate, rng, cfg.mic_eq_db)
    band_hz = None
    if cfg.band_limit_rates_hz and rng.random() < cfg.band_limit_prob:
        band_hz = int(cfg.band_limit_rates_hz[int(rng.integers(len(cfg.band_limit_rates_hz)))])
        mix = augment.band_limit(mix, params.sample_rate, band_hz)
    phone = band_hz is None and cfg.telephone_prob > 0 and rng.random() < cfg.telephone_prob
    if phone:
        mix = augment.telephone(mix, params.sample_rate, rng)
    peak_dbfs = float(rng.uniform(cfg.peak_dbfs_min, cfg.peak_dbfs_max))
    mix = augment.to_peak_dbfs(mix, peak_dbfs)
    return mix, {
        "background": bg.name,
        "snr_db": round(snr_db, 2),
        "peak_dbfs": round(peak_dbfs, 2),
        "coloured": coloured,
        "mic_eq": mic_eq,
        "band_limit_hz": band_hz,
        **({"telephone": True} if phone else {}),
    }
