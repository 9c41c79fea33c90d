"""The benchmark's test audio: long WAVs the daemon plays, one per (source, condition, side).

Sources:

- ``synthetic``: voices held out of training *and* calibration (the dataset's ``test``
  speakers), through :func:`export.heldout.heldout_source` -- their keyword utterances in
  positive streams (lead-in, keyword, tail; :func:`train.streams.positive_streams`), and their
  sentences plus ``speech_hours`` of freshly rendered speech by the same voices in long negative
  streams (half clean, half over generated noise);
- ``confusables`` (:data:`HARD_NEGATIVES`): the same voices' near-homophones of the keyword
  ("commuter", "calm pewter", "puter"), 2 s apart so each can fire on its own. Kept out of the
  false-accepts-per-hour pool -- a few hundred adversarial words in a row are not an hour of
  ordinary speech -- and reported as the share of them that fire;
- ``real`` (when ``../shared/data`` is there): its recordings of the keyword and its real
  non-keyword speech, laid out the same way over its recorded noise
  (:func:`train.evalsets.real_streams`).

Conditions: ``clean`` and ``<snr> dB`` (``[streams] snr_db``, each clip's speech that far above
the noise). Every stream of one (source, condition, side) is joined end to end into one
16-bit WAV, so one daemon process scores it; a JSON sidecar holds the keyword spans (s, in the
WAV's time) and who said each keyword, where known. Both are written atomically under
``<build>/bench/streams/``, named by a hash of everything they are built from, so a second run
finds them and a changed input rebuilds.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from device.fsutil import atomic_path, atomic_write_text
from device.params import AudioParams
from train.streams import Stream, discard_cache_file, least_recently_used, touch_cache

log = logging.getLogger(__name__)

FORMAT = 3
"""Bumped when the layout of the test audio changes (old caches are then rebuilt).
2: sidecars hold ``ignore`` (each keyword take set apart); 3: and ``speakers`` (who said each keyword)."""

HARD_NEGATIVES = "confusables"
"""Source label of the near-homophone set (not pooled with ordinary negative speech)."""


@dataclass(frozen=True)
class SetSpec:
    source: str
    """``synthetic`` | ``real`` (or any label, e.g. ``tone`` in tests)."""
    condition: str
    """``clean`` or ``<snr> dB``."""
    positive: bool
    """True: keyword streams; False: non-keyword speech."""

    @property
    def slug(self) -> str:
        cond = self.condition.replace(" ", "")
        return f"{self.source}-{cond}-{'pos' if self.positive else 'neg'}"


@dataclass(frozen=True)
class TestAudio:
    __test__ = False  # not a pytest test class, despite the name

    spec: SetSpec
    wav: Path
    spans: tuple[tuple[float, float], ...]
    """``(start_s, end_s)`` of every keyword in the WAV (empty for negatives)."""
    duration_s: float
    streams: int
    """Streams joined into the WAV."""
    clips: int = 0
    """Source utterances in the WAV, where known (the confusables'), else 0."""
    ignore: tuple[tuple[float, float], ...] = ()
    """Stretches set apart (``train.streams.Stream.ignore_spans``): each keyword take's extent."""
    speakers: tuple[str, ...] = ()
    """Who said each keyword of ``spans`` ("" where unknown; ``train.streams.Stream.speakers``)."""

    @property
    def hours(self) -> float:
        return self.duration_s / 3600


def condition_name(snr_db: float | None) -> str:
    return "clean" if snr_db is None else f"{snr_db:g} dB"


StreamIter = Iterable[tuple[str, Stream, int]]
"""``(group, stream, source utterances in it or 0)`` per stream; the group names a :class:`SetSpec`."""


def materialize(
    out_dir: Path, key: str, specs: dict[str, SetSpec], streams: Callable[[], StreamIter], sample_rate: int
) -> list[TestAudio]:
    """One WAV + sidecar per spec, built from ``streams()`` unless all are cached under ``key``.

    Streams of groups not in ``specs`` are skipped. Specs that received no stream are left out.
    """
    out_dir = Path(out_dir)
    sidecars = {g: out_dir / f"{s.slug}-{key}.json" for g, s in specs.items()}
    done = out_dir / f"complete-{key}.json"
    if done.is_file():
        try:
            # by name, in this folder: a copied or moved build reads its own files (older caches stored paths)
            loaded = [_load(out_dir / Path(p).name) for p in json.loads(done.read_text())["sets"]]
            touch_cache(done)
            return loaded
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("test audio cache %s unreadable (%s); rebuilding", done, exc)
    import soundfile as sf

    written: dict[str, dict] = {}
    with ExitStack() as stack:
        files = {}
        for group, spec in specs.items():
            tmp = stack.enter_context(atomic_path(out_dir / f"{spec.slug}-{key}.wav"))
            files[group] = stack.enter_context(sf.SoundFile(str(tmp), "w", sample_rate, 1, "PCM_16", format="WAV"))
            written[group] = {"samples": 0, "spans": [], "streams": 0, "clips": 0, "ignore": [], "speakers": []}
        for group, stream, clips in streams():
            if group not in files:
                continue
            w = written[group]
            w["clips"] += clips
            offset_s = w["samples"] / sample_rate
            files[group].write(np.clip(np.asarray(stream.audio, np.float32), -1.0, 1.0))
            w["spans"] += [(round(offset_s + a, 6), round(offset_s + b, 6)) for a, b in stream.keyword_spans]
            w["ignore"] += [(round(offset_s + a, 6), round(offset_s + b, 6)) for a, b in stream.ignore_spans]
            w["speakers"] += stream.keyword_speakers()
            w["samples"] += len(stream.audio)
            w["streams"] += 1
        for f in files.values():
            f.close()  # flushed before atomic_path fsyncs and renames
    sets = []
    for group, spec in specs.items():
        w = written[group]
        if not w["streams"]:
            (out_dir / f"{spec.slug}-{key}.wav").unlink(missing_ok=True)
            continue
        meta = {
            "format": FORMAT,
            "spec": asdict(spec),
            "wav": f"{spec.slug}-{key}.wav",
            "spans": w["spans"],
            "duration_s": w["samples"] / sample_rate,
            "streams": w["streams"],
            "clips": w["clips"],
            "ignore": w["ignore"],
            "speakers": w["speakers"],
        }
        atomic_write_text(sidecars[group], json.dumps(meta) + "\n")
        sets.append(_load(sidecars[group]))
    atomic_write_text(
        done,
        json.dumps({"sets": [sidecars[g].name for g, s in specs.items() if any(t.spec == s for t in sets)]}) + "\n",
    )
    prune_keys(out_dir)
    return sets


KEEP_KEYS = 6
"""Test audio kept per folder: the sets of the most recently used keys (a bench uses two or three;
each is hundreds of MB, and every other seed, exclusion or setting keys new ones)."""


def prune_keys(out_dir: Path, keep: int = KEEP_KEYS) -> None:
    """Delete the WAVs and sidecars of all but the ``keep`` most recently used keys in ``out_dir``."""
    for old in least_recently_used(out_dir.glob("complete-*.json"), keep):
        key = old.name[len("complete-") : -len(".json")]
        for f in out_dir.iterdir():
            if f.name.endswith((f"-{key}.wav", f"-{key}.json")) and not f.is_dir():
                discard_cache_file(f)
        log.info("removed the older test audio of key %s (%d kept)", key, keep)


def _load(sidecar: str | Path) -> TestAudio:
    sidecar = Path(sidecar)
    meta = json.loads(sidecar.read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"format {meta.get('format')!r}")
    wav = sidecar.parent / meta["wav"]
    if not wav.is_file():
        raise ValueError(f"{wav} is missing")
    return TestAudio(
        SetSpec(**meta["spec"]),
        wav,
        tuple(tuple(s) for s in meta["spans"]),
        float(meta["duration_s"]),
        int(meta["streams"]),
        int(meta.get("clips", 0)),
        tuple(tuple(s) for s in meta.get("ignore", [])),
        tuple(meta["speakers"]),
    )


# -- the two sources ----------------------------------------------------------------------


def synthetic_sets(keyword: str, build: Path, params: AudioParams, streams_cfg, bc, out_dir: Path) -> list[TestAudio]:
    """Held-out synthetic voices (the dataset's ``bc.synthetic_split`` speakers); [] without a dataset."""
    from export.calib_streams import CalibrationDataError
    from export.heldout import HeldoutPlan, heldout_source
    from train.streams import cache_key

    index = Path(build) / "sources" / "index.json"
    if not index.is_file():
        log.warning("no rendered sources under %s (run `make data`): no synthetic test voices", index.parent)
        return []
    plan = HeldoutPlan(
        split=bc.synthetic_split,
        speech_hours=bc.speech_hours,
        noise_hours=0.0,
        seed=bc.seed,
        negative_kinds=("speech",),
    )
    noisy = condition_name(streams_cfg.snr_db)
    specs = {
        "clean": SetSpec("synthetic", "clean", True),
        f"noisy {streams_cfg.snr_db:g} dB": SetSpec("synthetic", noisy, True),
        "speech": SetSpec("synthetic", "clean", False),
        "speech + noise": SetSpec("synthetic", noisy, False),
        "conf clean": SetSpec(HARD_NEGATIVES, "clean", False),
        "conf noisy": SetSpec(HARD_NEGATIVES, noisy, False),
    }
    key = cache_key(
        kind="synthetic",
        format=FORMAT,
        keyword=keyword,
        split=split_fingerprint(build, plan.split),
        params=params,
        streams=streams_cfg,
        plan=plan,
    )
    try:
        source = heldout_source(keyword, Path(build), params, plan, streams_cfg)

        def streams() -> StreamIter:
            for s in source():
                yield s.group, s, 0
            yield from _confusable_streams(build, params, streams_cfg, plan)

        return materialize(out_dir, key, specs, streams, params.sample_rate)
    except CalibrationDataError as exc:
        log.warning("no synthetic test voices: %s", exc)
        return []


def split_fingerprint(build: Path, split: str) -> str:
    """Hash of what the test audio is made of: the split's entries and speakers in the source
    index (``make data`` rewrites the index file on every run; its content for a split only
    changes with the data config)."""
    import hashlib

    from train.sources import load_index

    index = load_index(Path(build) / "sources")
    entries = sorted((e["path"], e["kind"], e["speaker"], e["text"]) for e in index["entries"] if e["split"] == split)
    speakers = sorted(s for s, v in index["speakers"].items() if v == split)
    return hashlib.sha256(json.dumps([entries, speakers]).encode()).hexdigest()[:16]


def _confusable_streams(build: Path, params: AudioParams, streams_cfg, plan) -> StreamIter:
    """The split's confusable utterances, 2 s apart (one refractory period), clean and in noise."""
    import dataclasses

    from export.heldout import noise_recordings
    from train.audio_io import read_audio
    from train.sources import list_sources, load_index
    from train.streams import Clip, negative_streams

    speakers = {s for s, split in load_index(Path(build) / "sources")["speakers"].items() if split == plan.split}
    clips = [
        Clip(read_audio(c.path, params), None, c.path.stem)
        for c in list_sources(build, plan.split, "confusable")
        if c.speaker in speakers
    ]
    if not clips:
        return
    # one stream holding every clip (so the count is exact), each clip 2-2.5 s after the last
    spaced = dataclasses.replace(streams_cfg, gap_min_s=2.0, gap_max_s=2.5, negative_stream_s=1e9)
    noise = noise_recordings(params, [c.audio for c in clips], plan.seed + 5)
    for group, snr in (("conf clean", None), ("conf noisy", streams_cfg.snr_db)):
        (stream,) = negative_streams(clips, params, spaced, noise if snr is not None else (), snr, plan.seed + 6)
        yield group, stream, len(clips)


def pick_evenly(items: list, n: int) -> list:
    """``n`` items spread evenly over the (sorted) list; all of them when ``n`` is 0 or more than there are."""
    if n <= 0 or n >= len(items):
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def real_sets(
    keyword: str, params: AudioParams, streams_cfg, bc, out_dir: Path, heard_speakers: Iterable[str] = ()
) -> list[TestAudio]:
    """Real recordings of ``../shared/data`` (when present and it has the keyword), else [].
    Speakers the model has heard (``heard_speakers``: those the dataset trained on, ``[data]
    use_shared_negatives``, and those export calibrated on, ``[export] shared_calibration_share``)
    and ``[bench] real_exclude_speakers`` are left out."""
    from train.evalsets import RealFiles, locate_real

    left_out = sorted(set(bc.real_exclude_speakers) | set(heard_speakers))
    files = locate_real("auto", keyword, left_out)
    if files is None:
        log.info("no real recordings of %r (../shared/data absent or without the keyword)", keyword)
        return []
    if left_out:
        log.info(
            "real recordings: %d keyword takes, %d negatives (%d speakers the model heard or "
            "[bench] real_exclude_speakers names left out)",
            len(files.keyword),
            len(files.negative),
            len(left_out),
        )
    files = RealFiles(
        pick_evenly(files.keyword, bc.real_keyword_clips),
        pick_evenly(files.negative, bc.real_negative_clips),
        files.noise,
        files.speakers,
    )
    return recorded_sets("real", files, params, streams_cfg, out_dir)


def recorded_sets(source: str, files, params: AudioParams, streams_cfg, out_dir: Path) -> list[TestAudio]:
    """Recordings (a :class:`train.evalsets.RealFiles`) as test audio labelled ``source``: the
    keyword takes in positive streams, the other speech in negative streams, clean and over the
    noise recordings at ``[streams] snr_db``."""
    from train.evalsets import real_streams
    from train.streams import cache_key, file_fingerprint

    key = cache_key(
        kind=source,
        format=FORMAT,
        files=[file_fingerprint(files.keyword), file_fingerprint(files.negative), file_fingerprint(files.noise)],
        params=params,
        streams=streams_cfg,
    )
    noisy = condition_name(streams_cfg.snr_db)
    specs = {
        "clean/pos": SetSpec(source, "clean", True),
        "noisy/pos": SetSpec(source, noisy, True),
        "clean/neg": SetSpec(source, "clean", False),
        "noisy/neg": SetSpec(source, noisy, False),
    }

    def streams() -> StreamIter:
        built = real_streams(files, params, streams_cfg, cache_dir=None)
        for group, items in built.items():
            cond = "clean" if group == "real_clean" else "noisy"
            for s in items:
                yield f"{cond}/{'pos' if s.positive else 'neg'}", s, 0

    return materialize(out_dir, key, specs, streams, params.sample_rate)


def describe(sets: list[TestAudio]) -> list[str]:
    """One line per set, for the log and the report."""
    return [
        f"{t.spec.source} {t.spec.condition} {'positives' if t.spec.positive else 'negatives'}: "
        f"{len(t.spans)} keywords, {t.hours:.2f} h{f', {t.clips} utterances' if t.clips else ''} ({t.wav.name})"
        for t in sets
    ]
