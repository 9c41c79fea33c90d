"""The mixing half of the dataset stage: clips -> embeddings -> shards, examples and report.

Shard ``k`` of a split holds clips ``k * shard_clips ...``; clip ``i`` is made with
``default_rng([seed, split_index, i])`` (see ``train.clipmaker``), so a resumed build makes
exactly what an uninterrupted one would have. Augmentation acts on the audio; the stored
features are the embeddings of the pretrained front end (``train.frontend.SpeechEmbedding``),
the very module that is inside the exported graph, so training and the Pi hear alike.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from device.params import AudioParams
from train import augment, synth, workpool
from train.clipmaker import SplitSources, make_clip
from train.dataconfig import DataConfig
from train.shards import is_complete, shard_paths, write_shard
from train.sources import is_users
from train.voicesplit import SPLITS

log = logging.getLogger(__name__)

FEATURE_BATCH = 8
"""Clips per front end call (measured fastest on one core; bounds the activations' memory)."""


def clip_seconds(dcfg: DataConfig, params: AudioParams) -> float:
    return synth.clip_samples_for(dcfg.clip_s, params) / params.sample_rate


def clip_rngs(dcfg: DataConfig, split: str, i: int) -> tuple[np.random.Generator, np.random.Generator]:
    """Clip ``i``'s generator, and the one that picks the user's own audio for it."""
    return (
        np.random.default_rng([dcfg.seed, SPLITS.index(split), i]),
        np.random.default_rng([dcfg.seed, SPLITS.index(split), i, 1]),
    )


def split_sources(
    index: dict, root: Path, dcfg: DataConfig, params: AudioParams, bg_files: dict[str, list], workers: int = 1
) -> dict[str, SplitSources]:
    """Per split: its utterances, background files and (cached) simulated rooms."""
    rooms = _room_banks(root / "rooms", dcfg, params, workers)
    out = {}
    for split in SPLITS:
        entries = [dict(e, path=str(root / "sources" / e["path"])) for e in index["entries"] if e["split"] == split]
        favoured: list[dict] = []
        pooled: list[dict] = []
        for e in entries:
            (favoured if dcfg.recording_share > 0 and is_users(e) else pooled).append(e)
        out[split] = SplitSources(
            split,
            params,
            dcfg,
            keywords=[e for e in pooled if e["kind"] == "keyword"],
            confusables=[e for e in pooled if e["kind"] == "confusable"],
            speech=[e for e in pooled if e["kind"] == "speech"],
            background_files=bg_files.get(split, []),
            rirs=rooms[split],
            users_keywords=[e for e in favoured if e["kind"] == "keyword"],
            users_confusables=[e for e in favoured if e["kind"] != "keyword"],
        )
    return out


def _room_banks(rooms_dir: Path, dcfg: DataConfig, params: AudioParams, workers: int) -> dict[str, list]:
    """Simulated rooms per split (train ``rooms``, val/test a quarter each; separate seeds), cached."""
    banks, tasks = {}, []
    for s_i, split in enumerate(SPLITS):
        count = dcfg.rooms if split == "train" else (max(1, dcfg.rooms // 4) if dcfg.rooms else 0)
        path = rooms_dir / f"{split}-{count}-{dcfg.seed}-{dcfg.rt60_min_s}-{dcfg.rt60_max_s}-{params.sample_rate}.npz"
        banks[split] = (path, count, augment.load_room_bank(path, count, params.sample_rate) if count else [])
        if banks[split][2] is None:
            seed = dcfg.seed * 10 + s_i
            tasks += [
                (
                    split,
                    (params.sample_rate, (dcfg.rt60_min_s, dcfg.rt60_max_s), seed, list(range(i, min(i + 8, count)))),
                )
                for i in range(0, count, 8)
            ]
    made: dict[str, dict[int, np.ndarray]] = {}
    for split, rirs in workpool.imap(
        _simulate,
        tasks,
        workers,
        desc="simulating rooms",
        total=sum(len(t[1][3]) for t in tasks),
        unit="room",
        weight=lambda r: len(r[1]),
    ):
        made.setdefault(split, {}).update(rirs)
    out = {}
    for split, (path, count, rirs) in banks.items():
        if rirs is None:
            rirs = [made[split][i] for i in range(count)]
            augment.save_room_bank(path, rirs, params.sample_rate)
        out[split] = rirs
    return out


def _simulate(task) -> tuple[str, dict[int, np.ndarray]]:
    split, spec = task
    return split, dict(zip(spec[3], augment.simulate_rirs(spec)))


# -- workers ----------------------------------------------------------------------------
_SOURCES: dict[str, SplitSources] = {}


def _init(sources_by_split: dict[str, SplitSources]) -> None:
    global _SOURCES
    _SOURCES = sources_by_split


def features(clips: list[np.ndarray], params: AudioParams) -> np.ndarray:
    """float32 clips (equal length) -> float16 embeddings ``[n, frames, 96]``."""
    import torch

    from train import frontend

    torch.set_num_threads(1)  # one worker per core already
    return frontend.embed(clips, frontend.shared(params), FEATURE_BATCH).astype(np.float16)


def _make_shard(task: tuple[str, str, int, int, int]) -> dict:
    split_dir, split, k, first, count = task
    src = _SOURCES[split]
    t0 = time.monotonic()
    clips = [make_clip(src, *clip_rngs(src.cfg, split, first + j)) for j in range(count)]
    feats = features([c.audio for c in clips], src.params)
    labels = np.stack([c.labels for c in clips])
    metas = [dict(c.meta, index=first + j) for j, c in enumerate(clips)]
    write_shard(split_dir, k, feats, labels, metas)
    return {"split": split, "clips": count, "seconds": time.monotonic() - t0}


def make_shards(dataset_dir: Path, sources_by_split: dict[str, SplitSources], dcfg: DataConfig, workers: int) -> dict:
    """Make every missing shard of every split; then count what all shards hold."""
    tasks, layout = [], {}
    for split in SPLITS:
        n = dcfg.clips(split)
        counts = [min(dcfg.shard_clips, n - first) for first in range(0, n, dcfg.shard_clips)]
        layout[split] = counts
        split_dir = dataset_dir / split
        split_dir.mkdir(parents=True, exist_ok=True)
        for k, count in enumerate(counts):
            if not is_complete(split_dir, k):
                tasks.append((str(split_dir), split, k, k * dcfg.shard_clips, count))
    todo = sum(t[4] for t in tasks)
    log.info(
        "clips: %d to mix (%d already done) on %d worker(s)", todo, sum(sum(c) for c in layout.values()) - todo, workers
    )
    t0 = time.monotonic()
    for _ in workpool.imap(
        _make_shard,
        tasks,
        workers,
        desc="mixing clips",
        total=todo,
        unit="clip",
        init=_init,
        init_args=(sources_by_split,),
        weight=lambda r: r["clips"],
    ):
        pass
    seconds = time.monotonic() - t0
    return {
        "splits": {s: _split_stats(dataset_dir / s, counts) for s, counts in layout.items()},
        "seconds": round(seconds, 1),
        "clips_made": todo,
        "clips_per_s": round(todo / seconds, 2) if todo and seconds > 0 else None,
    }


def _split_stats(split_dir: Path, counts: list[int]) -> dict:
    keyword_clips = keywords = negatives = skipped = positive_frames = 0
    frames: int | None = None
    embed_dim: int | None = None
    voices: set[str] = set()
    for k in range(len(counts)):
        feat_path, label_path, meta_path = shard_paths(split_dir, k)
        for line in meta_path.read_text().splitlines():
            m = json.loads(line)
            keyword_clips += bool(m["keywords"])
            keywords += len(m["keywords"])
            negatives += len(m["negatives"])
            skipped += m["skipped"]
            voices.update(x["voice"] for x in m["keywords"])
        labels = np.load(label_path, mmap_mode="r")
        positive_frames += int(labels.sum())
        frames = int(labels.shape[1])
        embed_dim = int(np.load(feat_path, mmap_mode="r").shape[2])
    return {
        "clips": sum(counts),
        "shard_counts": counts,
        "keyword_clips": keyword_clips,
        "keywords": keywords,
        "negatives": negatives,
        "skipped_placements": skipped,
        "positive_frames": positive_frames,
        "frames": frames,
        "embed_dim": embed_dim,
        "keyword_voices_used": len(voices),
    }


# -- examples and report ------------------------------------------------------------------
def write_examples(
    dataset_dir: Path, sources_by_split: dict[str, SplitSources], dcfg: DataConfig, params: AudioParams
) -> None:
    """Re-make the first clips of val and train (deterministic) and draw them with their labels."""
    from train.audio_io import write_wav
    from train.dataplots import draw_clip
    from train.frontend import log_mel

    out = dataset_dir / "examples"
    n = dcfg.example_pngs
    picks = [("val", i) for i in range(min(n // 2, dcfg.val_clips))]
    picks += [("train", i) for i in range(min(n - len(picks), dcfg.train_clips))]
    for split, i in picks:
        clip = make_clip(sources_by_split[split], *clip_rngs(dcfg, split, i))
        name = f"{split}-{i:04d}"
        draw_clip(
            out / f"{name}.png", log_mel(clip.audio, params), clip.labels, clip.meta, params, title=f"{split} clip {i}"
        )
        write_wav(out / f"{name}.wav", clip.audio, params.sample_rate)


def report(manifest: dict) -> str:
    """The dataset report (markdown): counts, voices, throughput."""
    src, thr = manifest["sources"], manifest["throughput"]
    lines = [
        f'# Dataset: "{manifest["keyword"]}"',
        "",
        f"Built {manifest['created']}, seed {manifest['seed']}, build key `{manifest['build_key']}`.",
        "",
        "| split | clips | with keyword | keywords | negatives | skipped placements | positive frames |"
        " keyword voices used |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s, v in manifest["splits"].items():
        lines.append(
            f"| {s} | {v['clips']} | {v['keyword_clips']} | {v['keywords']} | {v['negatives']} | "
            f"{v['skipped_placements']} | {v['positive_frames']} | {v['keyword_voices_used']} |"
        )
    lines += [
        "",
        "## Sources",
        "",
        "| split | keyword | confusable | speech | distinct voices | speakers |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for s, c in src["utterances"].items():
        lines.append(
            f"| {s} | {c['keyword']} | {c['confusable']} | {c['speech']} | "
            f"{src['distinct_voices'][s]} | {len(src['speakers'][s])} |"
        )
    used = {v for vs in src["voices"].values() for v in vs}
    per_engine = {k: sum(v.split(":", 1)[0] == k for v in used) for k in src["engines"]}
    lines += [
        "",
        f"- Engines ({len(src['engines'])}, {len(used)} distinct voices used): "
        + ", ".join(
            f"{k} ({v}; {per_engine[k]} voice{'' if per_engine[k] == 1 else 's'})" for k, v in src["engines"].items()
        )
        + ".",
    ]
    lines += [f"- Licence of the {k} voices: {_licence(k)}." for k in src["engines"]]
    if src["missing_engines"]:
        lines.append("- Skipped engines: " + "; ".join(f"{k}: {v}" for k, v in src["missing_engines"].items()) + ".")
    lines += [
        f"- Held out for val: {', '.join(src['heldout_speakers']['val']) or 'none'}.",
        f"- Held out for test: {', '.join(src['heldout_speakers']['test']) or 'none'}.",
    ]
    if src["shared_speakers"]:
        lines.append(
            f"- In every split with separate renders (too few voices to hold out): {', '.join(src['shared_speakers'])}."
        )
    r = src["render"]
    lines += [
        f"- Renders: {r['planned']} planned, {r['cached']} cached, {r['rendered']} rendered, "
        f"{r['failed']} failed. Unreadable files skipped: {len(src['unreadable'])}.",
        f"- Recordings used: {src['recordings'] or 'none'}. Shared data: {src['shared_data']}.",
        "- Backgrounds: generated noise, babble and hum"
        + "".join(f"; {_folder_line(f)}" for f in src.get("background_folders", []))
        + ".",
        "",
        "## Throughput",
        "",
        "- " + _render_line(thr, r["planned"]),
        f"- Mixing: {thr['clips_made']} clips in {thr['synth_s']} s = **{thr['clips_per_s']} clips/s** "
        f"on {thr['workers']} workers.",
        f"- Whole stage: {thr['total_s']} s.",
        "",
        "## Examples",
        "",
        "Spectrograms with labels underneath: `examples/*.png` (and the clips as WAV).",
    ]
    return "\n".join(lines) + "\n"


def _folder_line(folder: dict) -> str:
    """One background folder for the report: what it is, how much, and its licence if packaged."""
    amount = f"{folder['files']} files, {folder['hours']} h"
    if "package" in folder:
        return f"{folder['what']} (Debian package {folder['package']}, {folder['licence']}; {amount})"
    return f"{folder['folder']} ({amount})"


def _licence(engine: str) -> str:
    from train import tts

    try:
        return tts.engine_module(engine).LICENSE
    except (ValueError, AttributeError):
        return "unknown"


def _render_line(thr: dict, planned: int) -> str:
    measured = thr.get("render_measured")
    speed = (
        (
            f"{measured['per_s']} utterances/s ({measured['rendered']} in {measured['seconds']} s"
            f"{'' if thr['rendered'] else ', an earlier run'})"
        )
        if measured
        else "not measured"
    )
    return f"Rendering: {thr['rendered']} of {planned} utterances rendered in this run, {thr['render_s']} s; {speed}. "
