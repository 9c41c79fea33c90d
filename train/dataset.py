"""The dataset stage: ``python -m train.dataset --keyword K --build build/K [--quick] ...``.

From a keyword to ``build/<keyword>/dataset/`` (the contract training codes against)::

    manifest.json     sources, voices per split, seeds, counts (incl. skipped/unreadable),
                      resolved config, AudioParams, throughput; written last
    train/ val/ test/ shards (train.shards): the front end's embeddings float16 [n, frames, 96],
                      labels uint8 [n, frames] per 80 ms output frame, meta JSONL per clip
    report.md         counts, voices, throughput;  examples/*.png|wav  a few clips drawn

and ``build/<keyword>/sources/`` (train.sources): the rendered utterances with their index.

Steps: discover TTS voices -> split speakers (val/test never heard in train) -> derive
confusables -> render every source utterance (cached) -> simulate rooms (cached) -> mix clips
shard by shard on all cores (resumable) -> manifest, report, example plots.

Reading: :func:`open_split` gives a :class:`ClipSet`; :func:`source_utterances` lists the
raw utterances per split and kind (the benchmark's test streams use the ``test`` ones).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from device.fsutil import atomic_write_text
from device.params import AudioParams, ParamsError
from train import config, negatives, realdata, sources, tts, voicesplit, workpool
from train.backgrounds import background_files, packaged_folders
from train.dataconfig import DataConfig
from train.shards import ClipSet, is_complete
from train.sources import SourceClip, SourceError
from train.voicesplit import SPLITS

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
FORMAT = 2
"""2: features are the pretrained front end's embeddings and labels are per 80 ms output frame."""
KEEP_STASHED = 2
"""Datasets of other configurations kept aside (``dataset-<build key>``) for switching back."""
__all__ = ["open_split", "ClipSet", "source_utterances", "build", "DatasetError", "MANIFEST_NAME"]


class DatasetError(ValueError):
    """A dataset problem the user must fix (one line)."""


# -- reading ----------------------------------------------------------------------------
def load_manifest(dataset_dir: str | Path) -> dict:
    path = Path(dataset_dir) / MANIFEST_NAME
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"no dataset at {dataset_dir} (no {MANIFEST_NAME}): run `make data`") from None


def open_split(dataset_dir: str | Path, split: str) -> ClipSet:
    """The clips of ``split`` (``train`` | ``val`` | ``test``) of a finished dataset."""
    manifest = load_manifest(dataset_dir)
    if split not in manifest["splits"]:
        raise DatasetError(f"dataset {dataset_dir} has no split {split!r} (has {', '.join(manifest['splits'])})")
    info = manifest["splits"][split]
    return ClipSet(
        Path(dataset_dir) / split,
        info["shard_counts"],
        AudioParams.from_dict(manifest["audio_params"]),
        manifest["keyword"],
        _summary(manifest),
    )


def _summary(manifest: dict) -> dict:
    src = manifest["sources"]
    return {
        "keyword": manifest["keyword"],
        "seed": manifest["seed"],
        "build_key": manifest["build_key"],
        "clips": {s: v["clips"] for s, v in manifest["splits"].items()},
        "distinct_voices": src["distinct_voices"],
        "engines": sorted(src["engines"]),
        "heldout_speakers": src["heldout_speakers"],
        "shared_speakers": src["shared_speakers"],
        "shared_data": src["shared_data"],
    }


def source_utterances(build_dir: str | Path, split: str | None = None, kind: str | None = None) -> list[SourceClip]:
    """Raw source utterances (WAV paths + voice, text...) of a split and kind
    (``keyword`` | ``confusable`` | ``speech``)."""
    return sources.list_sources(build_dir, split, kind)


# -- building ---------------------------------------------------------------------------
def build(keyword: str, build_dir: str | Path, cfg: dict) -> dict:
    """Build (or resume, or find up to date) the dataset of ``keyword``; returns the manifest."""
    from train import datasynth  # the heavy half (torch) only when building

    params = config.section(cfg, "audio", AudioParams)
    dcfg = config.section(cfg, "data", DataConfig)
    root = Path(build_dir)
    _check_clip_length(dcfg, params)
    _remove_stale_temps(root)
    t_start = time.monotonic()
    workers = workpool.worker_count(dcfg.workers)

    found = tts.discover(dcfg.engines)
    speaker_split = voicesplit.assign(found.voices, dcfg)
    texts = {
        "keyword": [negatives.keyword_text(keyword)],
        "carrier": negatives.carrier_phrases(),
        "confusable": [c.text for c in _confusables(keyword, dcfg, root / "sources")],
        "speech": negatives.speech_texts(keyword, dcfg.generated_sentences, dcfg.seed),
    }
    shared = realdata.locate()
    shared_neg: list[Path] = []
    shared_speakers: list[str] = []
    if dcfg.use_shared_negatives and shared:
        clips, shared_speakers = realdata.training_negatives(dcfg.shared_negatives_share, shared)
        shared_neg = [c.path for c in clips]
    recordings = sources.plan_recordings(dcfg, keyword, params, shared_neg)
    jobs = sources.plan_tts(dcfg, params, found.voices, speaker_split, texts) + recordings.jobs
    clip_s = datasynth.clip_seconds(dcfg, params)
    ctx = sources.RenderContext(
        params, str(root / "sources"), clip_s - params.label_window_ms / 1000 - 0.05, clip_s - 0.2
    )
    t_render = time.monotonic()
    render_stats = sources.render(jobs, ctx, workers)
    render_s = time.monotonic() - t_render
    index = sources.write_index(
        jobs,
        root / "sources",
        speaker_split,
        {
            "keyword": keyword,
            "engines": found.backends,
            "missing_engines": found.missing,
            "render_throughput": _render_throughput(root / "sources", render_stats, render_s),
        },
    )
    _check_sources(index, dcfg, found, keyword)

    bg = _backgrounds(dcfg, shared)
    key = _build_key(keyword, dcfg, params, index, bg.per_split)
    dataset_dir = root / "dataset"
    switched = _switch_dataset_dir(root, key)
    manifest = _up_to_date(dataset_dir, key)
    if manifest is not None:
        log.info(
            "dataset %s is %s (%d train clips)",
            dataset_dir,
            "restored from an earlier build" if switched else "up to date",
            manifest["splits"]["train"]["clips"],
        )
        return manifest
    split_sources = datasynth.split_sources(index, root, dcfg, params, bg.per_split, workers)
    synth_stats = datasynth.make_shards(dataset_dir, split_sources, dcfg, workers)
    manifest = _manifest(
        keyword,
        cfg,
        params,
        dcfg,
        index,
        found,
        render_stats,
        render_s,
        synth_stats,
        recordings,
        bg,
        shared,
        key,
        time.monotonic() - t_start,
        shared_speakers,
    )
    datasynth.write_examples(dataset_dir, split_sources, dcfg, params)
    atomic_write_text(dataset_dir / "report.md", datasynth.report(manifest))
    config.dump_json(cfg, dataset_dir / "config.json")
    atomic_write_text(dataset_dir / MANIFEST_NAME, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _check_clip_length(dcfg: DataConfig, params: AudioParams) -> None:
    room_s = dcfg.clip_s - params.label_window_ms / 1000
    if room_s < 1.0:
        raise config.ConfigError(
            f"[data] clip_s={dcfg.clip_s} leaves {room_s:.2f} s for a keyword before the "
            f"{params.label_window_ms:.0f} ms label window; use at least "
            f"{1.0 + params.label_window_ms / 1000:.1f} s"
        )


def _remove_stale_temps(root: Path) -> None:
    """Temp files of writes that a kill -9 interrupted (atomic_path names them ``.<name>.*.tmp``)."""
    for sub in ("sources", "dataset", "rooms"):
        for tmp in (root / sub).rglob(".*.tmp") if (root / sub).is_dir() else []:
            tmp.unlink(missing_ok=True)


def _confusables(keyword: str, dcfg: DataConfig, sources_dir: Path) -> list[negatives.Confusable]:
    """Derived once per keyword, count and phrase floor, then read from
    ``sources/confusables-<count>[-p<floor>].json``."""
    floor = dcfg.phrase_min_distance
    path = sources_dir / (f"confusables-{dcfg.confusable_count}" + (f"-p{floor:g}" if floor else "") + ".json")
    if path.exists():
        data = json.loads(path.read_text())
        if (
            data.get("keyword") == keyword
            and data.get("count") == dcfg.confusable_count
            and data.get("phrase_min_distance", 0.0) == floor
        ):
            return [negatives.Confusable(**c) for c in data["confusables"]]
    found = (
        negatives.confusables(keyword, dcfg.confusable_count, phrase_min_distance=floor)
        if dcfg.confusable_count
        else []
    )
    atomic_write_text(
        path,
        json.dumps(
            {
                "keyword": keyword,
                "count": dcfg.confusable_count,
                "phrase_min_distance": floor,
                "confusables": [c.__dict__ for c in found],
            },
            indent=1,
        )
        + "\n",
    )
    return found


def _render_throughput(sources_dir: Path, stats: dict, seconds: float) -> dict | None:
    """Utterances/s of the last run that rendered something (kept when everything was cached)."""
    if stats["rendered"] and seconds > 0:
        return {
            "rendered": stats["rendered"],
            "seconds": round(seconds, 1),
            "per_s": round(stats["rendered"] / seconds, 1),
        }
    try:
        return sources.load_index(sources_dir).get("render_throughput")
    except SourceError:
        return None


def _check_sources(index: dict, dcfg: DataConfig, found: tts.Discovery, keyword: str) -> None:
    for split in SPLITS:
        if dcfg.clips(split) == 0:
            continue
        if not any(e["split"] == split and e["kind"] == "keyword" for e in index["entries"]):
            missing = "; ".join(f"{k}: {v}" for k, v in found.missing.items()) or "none missing"
            raise SourceError(
                f"no keyword utterances for the {split} split (TTS engines present: "
                f"{', '.join(found.backends) or 'none'}; skipped: {missing}; "
                f"recordings/{keyword}/positive adds your own takes)"
            )


@dataclass
class Backgrounds:
    """The background files of a build, per split, and where they come from."""

    per_split: dict[str, list]
    """split -> [(path, seconds)]: files are split by name (20 % held out) when there are at least 3."""
    unreadable: list[str]
    folders: list[dict]
    """One entry per folder: its path, files and hours, and for packaged sound its package and licence."""


def _backgrounds(dcfg: DataConfig, shared: Path | None) -> Backgrounds:
    """Background files per split (split by file when there are at least 3 files)."""
    folders: list[tuple[str, dict]] = [(str(d), {}) for d in dcfg.background_dirs]
    if dcfg.packaged_backgrounds:
        found, missing = packaged_folders()
        named = {Path(d).resolve() for d in dcfg.background_dirs}  # a folder named twice counts once
        folders += [
            (str(f), {"package": p.package, "licence": p.licence, "what": p.what})
            for p, f in found
            if f.resolve() not in named
        ]
        for p in missing:
            log.info("backgrounds: %s is not installed (sudo apt-get install %s adds it)", p.what, p.package)
    files, unreadable, described = [], [], []
    for folder, about in folders:
        try:
            got, bad = background_files(folder)
        except FileNotFoundError as exc:
            raise DatasetError(str(exc)) from None
        files += got
        unreadable += bad
        hours = round(sum(seconds for _, seconds in got) / 3600, 2)
        described.append({"folder": folder, "files": len(got), "hours": hours, **about})
    if dcfg.use_shared_noise and shared:
        from train.audio_io import duration_s

        files += [(c.path, duration_s(c.path)) for c in realdata.noise_clips(shared)]
    per_split: dict[str, list] = {s: [] for s in SPLITS}
    for path, seconds in files:
        split = voicesplit.stable_split(str(path), dcfg.seed, 0.2) if len(files) >= 3 else None
        for s in SPLITS:
            if split in (None, s):
                per_split[s].append((str(path), seconds))
    for s in SPLITS:  # a held-out split left without files shares train's
        if files and not per_split[s]:
            per_split[s] = list(per_split["train"])
    return Backgrounds(per_split, unreadable, described)


def _build_key(keyword: str, dcfg: DataConfig, params: AudioParams, index: dict, bg_files: dict) -> str:
    """Hash of everything the clips depend on (not of how fast they are made)."""
    # generated_sentences and keyword_engines act through what is rendered, which "sources" below
    # already names: a setting that changes no render must not change the key (datasets built
    # before it stay valid)
    # (packaged_backgrounds acts through the background files, named below)
    through_sources = ("generated_sentences", "keyword_engines", "packaged_backgrounds")
    data = {k: v for k, v in dcfg.to_dict().items() if k not in ("workers", "example_pngs", *through_sources)}
    if not any(sources.is_users(e) for e in index["entries"]):
        for unused in ("recording_share", "recording_context_s"):  # nothing to act on: datasets stay valid
            data.pop(unused)
    if not dcfg.formant_prob:  # off draws nothing: datasets built before the option stay valid
        data.pop("formant_max")
        data.pop("formant_prob")
    material = {
        "keyword": keyword,
        "data": data,
        "audio": params.to_dict(),
        "format": FORMAT,
        "sources": sorted(e["path"] + e["split"] for e in index["entries"]),
        "backgrounds": bg_files,
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _up_to_date(dataset_dir: Path, key: str) -> dict | None:
    try:
        manifest = json.loads((dataset_dir / MANIFEST_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if manifest.get("build_key") != key:
        return None
    return (
        manifest
        if all(
            is_complete(dataset_dir / s, k)
            for s, info in manifest["splits"].items()
            for k in range(len(info["shard_counts"]))
        )
        else None
    )


def _switch_dataset_dir(root: Path, key: str) -> bool:
    """Make ``root/dataset`` the home of build ``key``. A dataset of another configuration
    (e.g. QUICK=1 after a full build) is moved aside to ``dataset-<key>``, not deleted, and
    moved back when its configuration is built again (the ``KEEP_STASHED`` most recent are kept).
    Returns whether an earlier build of ``key`` was moved back."""
    current = root / "dataset"
    key_file = current / ".build-key"
    if current.exists():
        old = key_file.read_text().strip() if key_file.exists() else ""
        if old == key:
            return False
        if old:
            stash = root / f"dataset-{old}"
            shutil.rmtree(stash, ignore_errors=True)
            current.rename(stash)
            log.info("configuration changed: previous dataset kept in %s", stash)
        else:
            shutil.rmtree(current)
    stashes = sorted(root.glob("dataset-*"), key=lambda p: p.stat().st_mtime)
    for old_stash in stashes[:-KEEP_STASHED]:  # disk is finite: keep the most recent few
        if old_stash.name != f"dataset-{key}":
            shutil.rmtree(old_stash, ignore_errors=True)
    stashed = root / f"dataset-{key}"
    restored = stashed.exists()
    if restored:
        stashed.rename(current)
    current.mkdir(parents=True, exist_ok=True)
    atomic_write_text(key_file, key + "\n")
    return restored


def _manifest(
    keyword,
    cfg,
    params,
    dcfg,
    index,
    found,
    render_stats,
    render_s,
    synth_stats,
    recordings,
    bg: Backgrounds,
    shared,
    key,
    total_s,
    shared_speakers=(),
) -> dict:
    entries = index["entries"]
    voices = {s: sorted({e["voice"] for e in entries if e["split"] == s}) for s in SPLITS}
    speakers = {s: sorted({e["speaker"] for e in entries if e["split"] == s}) for s in SPLITS}
    counts = {
        s: {k: sum(1 for e in entries if e["split"] == s and e["kind"] == k) for k in sources.KINDS} for s in SPLITS
    }
    rendered = render_stats["rendered"]
    return {
        "format": FORMAT,
        "keyword": keyword,
        "build_key": key,
        "seed": dcfg.seed,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "audio_params": params.to_dict(),
        "data_config": dcfg.to_dict(),
        "config": cfg,
        "splits": synth_stats["splits"],
        "sources": {
            "engines": found.backends,
            "missing_engines": found.missing,
            "utterances": counts,
            "voices": voices,
            "speakers": speakers,
            "distinct_voices": {s: len(v) for s, v in voices.items()},
            "shared_speakers": sorted(s for s, v in index["speakers"].items() if v == voicesplit.BY_RENDER),
            "heldout_speakers": {s: sorted(k for k, v in index["speakers"].items() if v == s) for s in ("val", "test")},
            "recordings": recordings.origins,
            "render": {
                "planned": render_stats["planned"],
                "cached": render_stats["cached"],
                "rendered": rendered,
                "failed": len(render_stats["failed"]),
                "failed_examples": render_stats["failed"][:20],
            },
            "unreadable": recordings.unreadable + bg.unreadable,
            "backgrounds": {s: [Path(p).name for p, _ in f] for s, f in bg.per_split.items()},
            "background_folders": bg.folders,
            "shared_data": {
                "present": shared is not None,
                "use_shared_negatives": dcfg.use_shared_negatives,
                "use_shared_noise": dcfg.use_shared_noise,
                "trained_speakers": list(shared_speakers),
            },
        },
        "throughput": {
            "render_s": round(render_s, 1),
            "rendered": rendered,
            "render_measured": index.get("render_throughput"),
            "synth_s": synth_stats["seconds"],
            "clips_made": synth_stats["clips_made"],
            "clips_per_s": synth_stats["clips_per_s"],
            "workers": workpool.worker_count(dcfg.workers),
            "total_s": round(total_s, 1),
        },
    }


# -- command line -----------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    from train import stagecli

    args = stagecli.parser(
        "python -m train.dataset", __doc__.split("\n")[0], "output directory, e.g. build/<keyword>"
    ).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    def body() -> int:
        manifest = build(args.keyword, args.build, stagecli.load_config(args))
        s, t = manifest["splits"], manifest["throughput"]
        print(
            f"dataset: {args.build / 'dataset'}: "
            + ", ".join(f"{k} {v['clips']} clips" for k, v in s.items())
            + f"; voices {manifest['sources']['distinct_voices']}; {t['clips_per_s']} clips/s; "
            f"report: {args.build / 'dataset' / 'report.md'}"
        )
        return 0

    return stagecli.run(
        "dataset", body, (ParamsError, SourceError, DatasetError), "finished work is kept, run again to resume"
    )


if __name__ == "__main__":
    sys.exit(main())
