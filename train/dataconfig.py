"""The ``[data]`` section: what the dataset stage renders, mixes and stores.

Defaults here are the full run (``configs/default.toml`` repeats the ones worth seeing);
``configs/quick.toml`` shrinks the counts for QUICK=1. Lists arrive from TOML as lists and
are kept as tuples so the config stays hashable and frozen.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class DataConfig:
    # -- sizes ------------------------------------------------------------------------
    seed: int = 1234
    """Seed of everything random in the dataset stage; same seed + config + voices = same dataset."""
    clip_s: float = 10.0
    """Length of one training clip (s); rounded down to whole model output frames."""
    train_clips: int = 6000
    """Clips in the train split."""
    val_clips: int = 1500
    """Clips in the val split (held-out voices)."""
    test_clips: int = 400
    """Clips in the test split (held-out voices, none shared with val)."""
    shard_clips: int = 200
    """Clips per stored shard (the unit of parallel work and of resuming)."""
    workers: int = 0
    """Worker processes for rendering and mixing; 0 = one per CPU core."""

    # -- clip composition -------------------------------------------------------------
    keyword_clip_fraction: float = 0.6
    """Fraction of clips that contain at least one keyword; the rest contain none."""
    max_keywords_per_clip: int = 2
    """A keyword clip holds 1..this many keywords."""
    max_negatives_per_clip: int = 4
    """Each clip holds 0..this many non-keyword utterances (drawn before placement)."""
    confusable_fraction: float = 0.5
    """Share of non-keyword utterances that are confusables (the rest: general speech)."""

    # -- sources: text-to-speech ------------------------------------------------------
    engines: tuple[str, ...] = ("espeak", "flite", "festival", "piper")
    """TTS engines to use when installed (missing ones are skipped and reported)."""
    engine_weights: tuple[float, ...] = (0.45, 0.2, 0.15, 0.2)
    """Share of renders per engine, in the order of ``engines`` (renormalised over those present)."""
    keyword_engines: tuple[str, ...] = ()
    """Engines that say the keyword (empty: all of ``engines``); the others render confusables
    and sentences only, i.e. voices the model must learn not to fire on."""
    keyword_renders: int = 3000
    """Keyword utterances rendered for train; val and test get ``heldout_renders_fraction`` of it."""
    keyword_context_fraction: float = 0.0
    """Share of keyword renders spoken after a short phrase (``train/corpus/carriers.txt``:
    "hey ...", "I need the ..."), so the word is also heard straight after other speech; the
    utterance still ends with the keyword, where its label is."""
    confusable_count: int = 60
    """How many confusable words/phrases to derive from the keyword."""
    phrase_min_distance: float = 0.25
    """Two-word confusables whose joint sounds are closer to the keyword than this (per-phoneme
    distance, ``train.negatives``) are left out: TTS runs the words together, so "cam pewter"
    *is* "computer", and such near-homophones cost most real keywords (docs/experiments.md)."""
    confusable_renders: int = 2400
    """Confusable utterances rendered for train (spread over the confusable texts)."""
    speech_renders: int = 700
    """General-speech sentences rendered for train, from train/corpus/sentences.txt (and the
    generated ones below)."""
    generated_sentences: int = 0
    """More general-speech texts beside the corpus file's ~300: Faker-generated sentences (names,
    numbers, dates, places, commands, talk; ``train.negatives.generated_sentences``), seeded."""
    heldout_renders_fraction: float = 0.15
    """val and test each render this fraction of the train counts (at least a few)."""
    neural_speech_weight: float = 0.3
    """Multiplier on the neural engines' share (piper, Kokoro) for sentence renders: they take
    ~10x the CPU of the others per second of speech."""

    # -- voice split ------------------------------------------------------------------
    val_speakers: tuple[str, ...] = ("person:rms",)
    """Speakers held out for val (see ``train.tts.Voice.speaker``)."""
    test_speakers: tuple[str, ...] = ("person:ked", "person:awb")
    """Speakers held out for test."""
    variant_heldout_fraction: float = 0.12
    """Fraction of each engine's synthetic speakers (espeak variants, Kokoro style mixes) held
    out for val, and again for test (disjoint)."""
    split_by_render_speakers: tuple[str, ...] = ("person:joe",)
    """Speakers with too few voices to hold out (piper's only voice): their *renders* are split
    (disjoint synthesis settings), so val/test hear the same person as train. Reported."""

    # -- the user's own audio ---------------------------------------------------------
    recordings_dir: str = "recordings"
    """Root of ``<keyword>/positive|negative|field`` recordings (relative to the working dir)."""
    positive_dirs: tuple[str, ...] = ()
    """Extra folders of keyword recordings (WAV/FLAC, any rate and channels)."""
    negative_dirs: tuple[str, ...] = ()
    """Extra folders of non-keyword speech or sounds."""
    speech_dirs: tuple[str, ...] = ()
    """Folders of real audio that never says the keyword -- speech, podcasts, radio, TV, music --
    of any length (long files are cut into pieces, see ``speech_piece_*``), used as general
    negative speech beside the rendered sentences. Files split by hash: most train, some are
    held out for validation and calibration (``recording_val_fraction``)."""
    speech_piece_min_s: float = 1.5
    """Shortest piece a long ``speech_dirs`` file is cut into (s)."""
    speech_piece_max_s: float = 6.0
    """Longest piece (s); shorter files are used whole."""
    background_dirs: tuple[str, ...] = ()
    """Folders of background audio (half of the clips' backgrounds are drawn from the folders'
    files when there are any, the other half generated: coloured noise, babble, hum)."""
    packaged_backgrounds: bool = True
    """Also use the recorded sound that system packages install as background folders, when
    installed (``train.backgrounds.PACKAGED_SOUNDS``: the Battle for Wesnoth's music, ``sudo
    apt-get install wesnoth-music``, which ``make setup`` installs). Measured: fewer real keywords
    missed on the four real development keywords (docs/experiments.md, "Real music behind the
    words"). Off, or not installed: ``background_dirs`` and generated noise only."""
    recording_val_fraction: float = 0.1
    """Fraction of the user's recordings (by file) for val, and again for test."""
    recording_context_s: float = 1.0
    """Audio kept from before the word in the user's keyword recordings and confirmed detections
    (s; as much as the file holds): the room the word was said in, as the Pi hears it before the
    word. Trimmed to the word, a fine-tune learnt the user's voice only after synthetic
    backgrounds and still missed the same person in their own room (docs/experiments.md)."""
    recording_share: float = 0.2
    """When a split has the user's own audio (``recordings/<keyword>/``, ``positive_dirs``,
    ``negative_dirs``: their takes, confirmed detections, reviewed false accepts), this share of
    its keyword draws comes from the user's keyword audio, and this share of its confusable draws
    from the user's non-keyword audio. A few dozen takes among thousands of synthetic utterances
    would otherwise almost never be drawn (0 = draw them like any other utterance)."""

    # -- ../shared/data (real recordings; off by default so real-voice figures stay honest)
    use_shared_negatives: bool = False
    """Train also on ../shared/data real negative speech (``shared_negatives_share`` of its
    speakers). Recorded in the manifest; every real-voice figure then leaves those speakers out."""
    shared_negatives_share: float = 0.5
    """With ``use_shared_negatives``: the share of ../shared/data's speakers (by a hash of the
    speaker) whose negative speech trains. The others are the held-out real audio that validation
    and the benchmark use; a speaker who trains is left out of them whole (their takes of the
    keyword too: ``train.evalsets.locate_real``)."""
    use_shared_noise: bool = False
    """Use ../shared/data noise recordings as backgrounds. Recorded in the manifest."""

    # -- augmentation -----------------------------------------------------------------
    speed_min: float = 0.88
    """Lowest speed factor (resampling: tempo and pitch together)."""
    speed_max: float = 1.12
    """Highest speed factor."""
    pitch_prob: float = 0.3
    """Probability of an extra pitch shift (tempo kept)."""
    pitch_semitones: float = 2.5
    """Largest pitch shift, up or down (semitones)."""
    formant_prob: float = 0.0
    """Probability that an utterance's formants are scaled (vocal-tract length: another speaker's
    tract, pitch and tempo kept; praat-parselmouth)."""
    formant_max: float = 1.2
    """Largest formant scaling, up or down (a ratio >= 1; drawn log-uniform in [1/max, max])."""
    reverb_prob: float = 0.6
    """Probability that an utterance is convolved with a simulated room."""
    rooms: int = 120
    """Simulated room impulse responses per split (pyroomacoustics, cached)."""
    rt60_min_s: float = 0.15
    """Shortest room reverberation time (s)."""
    rt60_max_s: float = 0.9
    """Longest room reverberation time (s)."""
    eq_prob: float = 0.4
    """Probability of a random microphone colouring (band-limit and tilt)."""
    mic_eq_prob: float = 0.5
    """Probability of random microphone resonances and dips (``augment.mic_eq``) on a clip."""
    mic_eq_db: float = 6.0
    """Largest gain of each of those peaking filters, up or down (dB)."""
    band_limit_prob: float = 0.15
    """Probability that a clip sounds as if recorded at a lower rate (8 kHz phone/headset
    sources: nothing above 4 kHz), drawn from ``band_limit_rates_hz``."""
    band_limit_rates_hz: tuple[int, ...] = (8000, 11025)
    """Source rates the band-limiting imitates."""
    telephone_prob: float = 0.0
    """Probability that a clip (not band-limited already) goes through a telephone line
    (``augment.telephone``: 300-3400 Hz, 8 kHz, 8-bit mu-law)."""
    gain_db: float = 8.0
    """Utterance loudness varies by up to +-this within a clip (dB)."""
    snr_min_db: float = 0.0
    """Lowest speech-to-background ratio (dB)."""
    snr_max_db: float = 30.0
    """Highest speech-to-background ratio (dB)."""
    quiet_fraction: float = 0.15
    """Fraction of clips with a near-silent background (SNR 40-60 dB)."""
    peak_dbfs_min: float = -35.0
    """Quietest clip peak (dBFS); clips are scaled to a peak in [min, max], never clipped."""
    peak_dbfs_max: float = -1.0
    """Loudest clip peak (dBFS)."""

    # -- outputs ----------------------------------------------------------------------
    example_pngs: int = 6
    """Example clips drawn as PNG (spectrogram with labels), with their WAVs."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        problems = []
        if self.clip_s <= 0:
            problems.append("clip_s must be positive")
        for name in (
            "train_clips",
            "val_clips",
            "test_clips",
            "keyword_renders",
            "confusable_renders",
            "speech_renders",
            "generated_sentences",
            "confusable_count",
            "example_pngs",
            "rooms",
            "workers",
        ):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be >= 0")
        if self.shard_clips < 1 or self.max_keywords_per_clip < 1 or self.max_negatives_per_clip < 0:
            problems.append("shard_clips and max_keywords_per_clip must be >= 1")
        for name in (
            "keyword_clip_fraction",
            "confusable_fraction",
            "pitch_prob",
            "formant_prob",
            "reverb_prob",
            "eq_prob",
            "mic_eq_prob",
            "band_limit_prob",
            "telephone_prob",
            "quiet_fraction",
            "heldout_renders_fraction",
            "variant_heldout_fraction",
            "recording_val_fraction",
            "recording_share",
            "shared_negatives_share",
            "keyword_context_fraction",
        ):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be in [0, 1]")
        from train.tts import ENGINES

        unknown = sorted(set(self.engines) - set(ENGINES))
        if unknown:
            problems.append(f"unknown TTS engine(s) {', '.join(unknown)} (known: {', '.join(ENGINES)})")
        if set(self.keyword_engines) - set(self.engines):
            problems.append("keyword_engines must be some of engines")
        if len(self.engine_weights) != len(self.engines):
            problems.append("engine_weights needs one weight per engine")
        if not 1 <= self.formant_max <= 2:
            problems.append("formant_max must be in [1, 2]")
        if not 0 < self.speed_min <= self.speed_max:
            problems.append("need 0 < speed_min <= speed_max")
        if not self.snr_min_db <= self.snr_max_db or not self.peak_dbfs_min <= self.peak_dbfs_max <= 0:
            problems.append("need snr_min_db <= snr_max_db and peak_dbfs_min <= peak_dbfs_max <= 0")
        if not 0 < self.speech_piece_min_s <= self.speech_piece_max_s:
            problems.append("need 0 < speech_piece_min_s <= speech_piece_max_s")
        if self.recording_context_s < 0:
            problems.append("recording_context_s must be >= 0")
        if self.phrase_min_distance < 0:
            problems.append("phrase_min_distance must be >= 0")
        if not 0 < self.rt60_min_s <= self.rt60_max_s:
            problems.append("need 0 < rt60_min_s <= rt60_max_s")
        if problems:
            raise ValueError("; ".join(problems))

    def clips(self, split: str) -> int:
        return {"train": self.train_clips, "val": self.val_clips, "test": self.test_clips}[split]

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
