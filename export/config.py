"""The ``[export]`` section of the configuration (configs/default.toml)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from export.calibrate import CalibrationConfig


@dataclass(frozen=True)
class ExportConfig(CalibrationConfig):
    """``[export]``: how thresholds are chosen (the fields of :class:`CalibrationConfig`, first) and
    on what audio, plus the parity, int8 and cost checks of the export."""

    calibration_dir: str = ""
    """A folder of WAVs (+ ``.label.json`` sidecars) to calibrate on instead of the held-out streams."""
    calibration_split: str = "val"
    """Dataset split whose (held-out) speakers voice the calibration streams; never ``train``."""
    speech_hours: float = 4.0
    """Negative speech rendered by the held-out voices for calibration (h), half clean, half in noise."""
    noise_hours: float = 1.0
    """Generated background-only negative audio for calibration (h)."""
    calibration_confusables: bool = False
    """Count the held-out split's confusables (the keyword's sound-alikes, parts and cuts:
    "computed", "commuter", "pewter", "compu") as ordinary negative speech when calibrating.
    Off by default: they are far denser in those streams than in anyone's day, so they alone
    would set the threshold (and miss most real keywords); ``make bench`` reports them apart,
    as a hard-negative set, and counts false accepts per hour on ordinary speech as here."""
    real_negative_dirs: tuple[str, ...] = ()
    """Folders of real audio that never says the keyword and never trained the model (speech,
    podcasts, TV, music, the household's own sound). With the held-out files of ``[data]
    speech_dirs`` (the ``calibration_split`` ones) they are the *real* calibration negatives,
    each file once clean and once over generated noise at ``[streams] snr_db``."""
    bundled_speech: bool = True
    """Also calibrate on the real read speech shipped with wakeword (``export/speech``: 1.7 h,
    66 speakers of speechocean762; README there). Without any real audio the threshold is chosen
    on synthetic voices alone, which set it several times too cautiously for real speech on
    "computer" (docs/experiments.md, "Real speech in the box"). Off: calibrate as before."""
    shared_calibration_share: float = 0.0
    """Development machines: also calibrate on this share of ``../shared/data``'s speakers (their
    non-keyword speech; the top of :func:`train.realdata.speaker_position`, never a speaker who
    trained). The model records them and ``make bench`` leaves them out of its real-voice figures."""
    real_basis: str = "pooled"
    """How real negative audio sets the thresholds: ``pooled`` (default) -- chosen on every
    negative group together, real and held-out synthetic; ``real`` -- on the real groups alone
    when there are at least ``real_min_hours`` of them. Measured on eight models
    (docs/experiments.md): real alone missed the fewest keywords but let up to 3x the target's
    false accepts through on speakers it had not heard (2.5 h of real audio is one or two false
    accepts: a noisy estimate); pooled kept every model within 1.5x of the target and still
    missed about a fifth fewer keywords than synthetic alone."""
    real_min_hours: float = 1.0
    """With ``real_basis = "real"``: the real audio needed before it alone sets the thresholds."""
    choose_heads: bool = True
    """With several heads (``[model] heads``), ship the subset of them that misses clearly fewer
    real takes of the keyword that never trained, when there are at least ``choice_min_takes``
    (export.headchoice; the report says what it saw). Off, or too few takes: all heads."""
    keyword_dirs: tuple[str, ...] = ()
    """Folders of real takes of the keyword that never trained (WAV/FLAC, a ``.label.json`` per
    file with its keyword spans, else the file's speech is the keyword), for the head choice.
    ``recordings/<keyword>/check`` (``make record KIND=check``) and the user's
    ``recordings/<keyword>/positive`` files outside the train split count too."""
    shared_keyword_share: float = 0.0
    """Development machines: also choose the heads on the takes of this share of
    ``../shared/data``'s speakers (the top of :func:`train.realdata.speaker_position`, never one
    who trained). The model records them and ``make bench`` leaves them out of its figures."""
    choice_min_takes: int = 20
    """Fewer real takes than this: keep all heads without scoring."""
    choice_margin: float = 0.02
    """A subset must miss at least this share of the take copies fewer than all heads ..."""
    choice_alpha: float = 0.05
    """... win a sign test over the takes at this level (Bonferroni over the candidates) ..."""
    choice_draws: int = 1000
    choice_confidence: float = 0.95
    """... and miss fewer in at least this share of ``choice_draws`` bootstrap resamples of the
    negative streams and the takes, the thresholds chosen afresh on each (0 draws: not asked)."""
    calibration_seed: int = 4242
    """Seed of the calibration audio (texts, voices, noise)."""
    parity_tolerance: float = 1e-4
    """Largest |onnxruntime - PyTorch| probability difference the export accepts."""
    parity_streams: int = 4
    """Calibration streams (positives first: real speech) also used for the parity check."""
    parity_max_s: float = 30.0
    """Each parity signal is cut to this many seconds (the one-frame chunking is slow)."""
    int8: bool = True
    """Try an int8 variant (onnxruntime dynamic quantization) and report it next to float32."""
    int8_max_miss_increase: float = 0.02
    """Keep ``model.int8.onnx`` only if its miss rate at the target is at most this much higher ..."""
    int8_max_cpu_ratio: float = 0.9
    """... and one streaming step costs at most this fraction of the float32 step's CPU time."""
    bench_steps: int = 40
    """Inference steps timed for the cost figures in the report."""
    bench_window_s: float = 10.0
    """Window a stateless model would re-run every step, for the cost comparison (s)."""
    score_threads: int = 1
    """onnxruntime threads for scoring the calibration streams (the machine is shared)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.shared_calibration_share <= 1:
            raise ValueError("shared_calibration_share must be in [0, 1]")
        if not 0 <= self.shared_keyword_share <= 1:
            raise ValueError("shared_keyword_share must be in [0, 1]")
        if self.choice_min_takes < 1 or not 0 <= self.choice_margin <= 1 or not 0 < self.choice_alpha <= 1:
            raise ValueError("choice_min_takes must be >= 1, choice_margin in [0, 1] and choice_alpha in (0, 1]")
        if self.choice_draws < 0 or not 0 <= self.choice_confidence <= 1:
            raise ValueError("choice_draws must be >= 0 and choice_confidence in [0, 1]")
        if self.real_basis not in ("pooled", "real"):
            raise ValueError(f"real_basis must be pooled or real, got {self.real_basis!r}")
        if not 0 <= self.real_min_hours < float("inf"):
            raise ValueError("real_min_hours must be a finite number >= 0")
        if self.parity_tolerance <= 0 or self.parity_streams < 1 or self.parity_max_s <= 0:
            raise ValueError("parity_tolerance, parity_streams and parity_max_s must be positive")
        if self.calibration_split == "train":
            raise ValueError("calibration_split must be a held-out split (val or test), not train")
        if self.speech_hours < 0 or self.noise_hours < 0:
            raise ValueError("speech_hours and noise_hours must be >= 0")
        if self.bench_steps < 1 or self.bench_window_s <= 0 or self.score_threads < 1:
            raise ValueError("bench_steps, bench_window_s and score_threads must be positive")

    def calibration(self) -> CalibrationConfig:
        """The calibration's own settings alone."""
        return CalibrationConfig(**{f.name: getattr(self, f.name) for f in fields(CalibrationConfig)})
