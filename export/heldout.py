"""Calibration streams from voices training never heard (the dataset's ``val`` speakers).

What is in them (all deterministic for a seed):

- *positive* streams: every ``val`` keyword utterance of ``build/<kw>/sources`` (speakers held
  out of training; "by-render" speakers, who also speak in train, are left out), laid out by
  :func:`train.streams.positive_streams`, once clean and once over generated noise at
  ``StreamConfig.snr_db`` -- groups ``clean`` and ``noisy <snr> dB``;
- *negative speech*: the ``val`` confusables and sentences, plus ``speech_hours`` of freshly
  rendered speech by the same held-out voices (the repo's sentences and random word sequences,
  never containing the keyword), joined by :func:`train.streams.negative_streams`; batches
  alternate between clean (group ``speech``) and over noise (``speech + noise``);
- *negative noise*: ``noise_hours`` of generated backgrounds alone (coloured noise, mains hum,
  babble of held-out voices; group ``noise``);
- *real negatives*, when there are any (:class:`RealNegatives`: folders of real audio that never
  trained, ``../shared/data`` speakers set aside for calibration): each file once clean (group
  ``real speech``) and once over real background recordings when there are some (else generated
  noise whose babble is made of the real audio itself; group ``real speech + noise``). Long files are
  cut into pieces of at most ``negative_stream_s`` and joined like the rendered speech.

The synthetic groups' noise is generated (:mod:`train.backgrounds`), never read from
``../shared/data``, which is the benchmark's real-voice test set (the real groups may use its noise
recordings on development machines, see :func:`export.pipeline.real_negatives`). Audio is produced
batch by batch so hours of it never sit in memory at once; rendering costs about a minute per hour of
speech (espeak-ng in process).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from device.params import AudioParams
from export.calib_streams import CalibrationDataError, Source
from train.streams import Stream

log = logging.getLogger(__name__)

NOISE_BED_S = 30.0
"""Length of each generated noise recording the stream mixer draws excerpts from (s)."""


@dataclass(frozen=True)
class HeldoutPlan:
    split: str
    """Dataset split whose speakers voice the streams (``val``: held out of training)."""
    speech_hours: float
    """Rendered negative speech (on top of the split's own confusables and sentences) (h)."""
    noise_hours: float
    """Background-only negative audio (h)."""
    seed: int
    batch_utterances: int = 160
    """Utterances rendered per batch (about 10 minutes of speech; the unit held in memory)."""
    negative_kinds: tuple[str, ...] = ("confusable", "speech")
    """Kinds of the split's own non-keyword utterances put in the negative streams (the benchmark
    keeps the near-homophone ``confusable`` ones apart, as their own hard-negative set)."""
    real: RealNegatives | None = None
    """Real negative audio to calibrate on as well (groups ``real speech``, ``real speech + noise``)."""


REAL_GROUPS = ("real speech", "real speech + noise")
"""Calibration groups of real negative audio (see :attr:`HeldoutPlan.real`)."""


@dataclass(frozen=True)
class RealNegatives:
    """Real audio without the keyword, never trained on: what a threshold is best calibrated on."""

    files: tuple[Path, ...]
    folders: tuple[str, ...] = ()
    """Where the files come from (the report names them)."""
    shared_speakers: tuple[str, ...] = ()
    """``../shared/data`` speakers among them (``make bench`` leaves them out of its figures)."""
    noise_files: tuple[Path, ...] = ()
    """Real background recordings for the noisy copy (``[data] background_dirs``; on development
    machines ``../shared/data``'s noise); without them, generated noise and babble of the real audio."""

    def describe(self) -> dict:
        return {
            "files": len(self.files),
            "folders": list(self.folders),
            "shared_speakers": list(self.shared_speakers),
            "noise_files": len(self.noise_files),
        }


def heldout_source(keyword: str, build: Path, params: AudioParams, plan: HeldoutPlan, streams_cfg) -> Source:
    """A :data:`~export.calib_streams.Source` over the held-out streams described above."""
    from train.sources import SourceError, list_sources, load_index

    try:
        speakers = {s for s, split in load_index(Path(build) / "sources")["speakers"].items() if split == plan.split}
        clips = [c for c in list_sources(build, plan.split) if c.speaker in speakers]
    except SourceError as exc:
        raise CalibrationDataError(str(exc)) from None
    keyword_clips = [c for c in clips if c.kind == "keyword"]
    negative_clips = [c for c in clips if c.kind in plan.negative_kinds]
    if not keyword_clips:
        raise CalibrationDataError(f"no {plan.split!r} keyword utterances under {build}/sources; run `make data`")
    log.info(
        "held-out calibration: %d keyword and %d negative %s utterances by %d speakers, "
        "+%.1f h rendered speech, +%.1f h noise",
        len(keyword_clips),
        len(negative_clips),
        plan.split,
        len(speakers),
        plan.speech_hours,
        plan.noise_hours,
    )

    def streams() -> Iterator[Stream]:
        from train.audio_io import read_audio

        kw_audio = [read_audio(c.path, params) for c in keyword_clips]
        neg_audio = [read_audio(c.path, params) for c in negative_clips]
        noise = noise_recordings(params, neg_audio, plan.seed)
        yield from _positives(kw_audio, noise, params, streams_cfg)
        yield from _noise_only(noise, params, plan, streams_cfg)
        seconds = {False: 0.0, True: 0.0}  # clean / noisy speech so far: keep the two halves even
        batches = itertools.chain([neg_audio], _rendered_batches(keyword, speakers, params, plan))
        for k, batch in enumerate(batches):
            noisy = seconds[True] < seconds[False]
            seconds[noisy] += sum(len(a) for a in batch) / params.sample_rate
            yield from _negatives(
                batch,
                noise if noisy else (),
                params,
                streams_cfg,
                streams_cfg.snr_db if noisy else None,
                plan.seed + 10 + k,
                "speech + noise" if noisy else "speech",
                k,
            )
        if plan.real is not None:
            real_noise = _real_noise(plan.real.noise_files, params)
            for k, batch in enumerate(_real_batches(plan.real.files, params, streams_cfg)):
                if not real_noise:  # no recordings: generated noise with babble of the real voices
                    real_noise = noise_recordings(params, batch, plan.seed + 5000)
                for group, snr in zip(REAL_GROUPS, (None, streams_cfg.snr_db)):
                    yield from _negatives(
                        batch,
                        real_noise if snr is not None else (),
                        params,
                        streams_cfg,
                        snr,
                        plan.seed + 5000 + k,
                        group,
                        k,
                    )

    return streams


def _readable(files, params: AudioParams, what: str) -> Iterator[np.ndarray]:
    """Each file's audio at the model rate; an unreadable file is skipped with a warning (and counted)."""
    from train.audio_io import AudioReadError, read_audio

    skipped = 0
    for path in files:
        try:
            yield read_audio(path, params)
        except AudioReadError as exc:
            log.warning("%s: skipping %s", what, exc)
            skipped += 1
    if skipped:
        log.warning("%s: %d of %d files unreadable and left out", what, skipped, len(files))


def _real_noise(files, params: AudioParams) -> list[np.ndarray]:
    """The readable, non-silent background recordings among ``files``."""
    return [a for a in _readable(files, params, "real calibration noise") if np.any(a)]


def _real_batches(files, params: AudioParams, cfg, batch_s: float = 600.0) -> Iterator[list[np.ndarray]]:
    """The files' audio in batches of about ``batch_s``, long files cut into pieces of at most
    ``negative_stream_s``."""
    piece = max(1, round(cfg.negative_stream_s * params.sample_rate))
    batch, held = [], 0
    for audio in _readable(files, params, "real calibration audio"):
        for start in range(0, len(audio), piece):
            batch.append(audio[start : start + piece])
            held += len(batch[-1])
        if held >= batch_s * params.sample_rate:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def noise_recordings(params: AudioParams, utterances: list[np.ndarray], seed: int) -> list[np.ndarray]:
    """Generated background recordings (unit RMS): coloured noise of several slopes, hum, babble."""
    from train.backgrounds import babble, coloured_noise, hum

    rng = np.random.default_rng([seed, 1])
    n = round(NOISE_BED_S * params.sample_rate)
    beds = [coloured_noise(n, float(alpha), rng) for alpha in np.linspace(0.0, 2.0, 9)]
    beds += [hum(n, params.sample_rate, rng) for _ in range(2)]
    if utterances:
        for _ in range(4):
            picks = [utterances[i] for i in rng.choice(len(utterances), size=min(5, len(utterances)), replace=False)]
            beds.append(babble(n, picks, rng))
    return beds


def _positives(kw_audio, noise, params, cfg) -> Iterator[Stream]:
    from train.streams import Clip, positive_streams, speech_span_s

    clips = [Clip(a, speech_span_s(a, params), f"kw{i}") for i, a in enumerate(kw_audio)]
    for group, snr in (("clean", None), (f"noisy {cfg.snr_db:g} dB", cfg.snr_db)):
        yield from positive_streams(clips, params, cfg, noise if snr is not None else (), snr, cfg.seed, group)


def _noise_only(noise, params: AudioParams, plan: HeldoutPlan, cfg) -> Iterator[Stream]:
    from train.streams import noise_bed

    rng = np.random.default_rng([plan.seed, 2])
    n = round(cfg.negative_stream_s * params.sample_rate)
    for k in range(int(np.ceil(plan.noise_hours * 3600 / cfg.negative_stream_s))):
        level = 10 ** (rng.uniform(-50.0, -20.0) / 20)  # RMS from a quiet room to a loud fan
        yield Stream((noise_bed(noise, n, rng) * level).astype(np.float32), [], "noise", f"noise/{k:03d}")


def _negatives(audio, noise, params, cfg, snr_db, seed, group, batch) -> Iterator[Stream]:
    from train.streams import Clip, negative_streams

    clips = [Clip(a, None, f"b{batch}u{i}") for i, a in enumerate(audio)]
    for s in negative_streams(clips, params, cfg, noise, snr_db, seed, group):
        yield Stream(s.audio, [], group, f"{group}/{batch:03d}/{s.name.rsplit('/', 1)[-1]}")


def _rendered_batches(
    keyword: str, speakers: set[str], params: AudioParams, plan: HeldoutPlan
) -> Iterator[list[np.ndarray]]:
    """Batches of rendered utterances (float32, peak -25..-1 dBFS) until ``speech_hours`` are done."""
    from train import tts
    from train.audio_io import resample
    from train.negatives import corpus_sentences, keyword_text, word_list

    voices = [v for v in tts.discover().voices if v.speaker in speakers]
    if not voices:
        raise CalibrationDataError(f"no TTS voice of the {plan.split!r} speakers is installed here")
    rng = np.random.default_rng([plan.seed, 3])
    sentences = corpus_sentences(keyword)
    spoken = keyword_text(keyword).lower()
    words = [w for w in word_list() if spoken not in w.lower()]  # also drops "computers", "microcomputer"
    voices = [voices[i] for i in rng.permutation(len(voices))]
    done_s, k = 0.0, 0
    while done_s < plan.speech_hours * 3600:
        requests = []
        for _ in range(plan.batch_utterances):
            voice = voices[k % len(voices)]
            k += 1
            text = (
                sentences[int(rng.integers(len(sentences)))]
                if rng.random() < 0.4
                else " ".join(rng.choice(words, size=int(rng.integers(4, 15))))
            )
            settings = tts.engine_module(voice.engine).random_settings(voice, rng)
            requests.append(tts.Request(voice, text, tuple(sorted(settings.items()))))
        batch = []
        for res in tts.synthesize(requests):
            if isinstance(res, str) or not len(res.audio):
                continue
            audio = resample(res.audio, res.sample_rate, params.sample_rate)
            peak = float(np.max(np.abs(audio)))
            if peak > 1e-3:
                batch.append(audio * np.float32(10 ** (rng.uniform(-25.0, -1.0) / 20) / peak))
        if not batch:
            raise CalibrationDataError(
                f"text-to-speech rendered nothing for {len(requests)} requests "
                f"(voices {', '.join(sorted({v.id for v in voices})[:3])}, ...)"
            )
        done_s += sum(len(a) for a in batch) / params.sample_rate
        yield batch
