"""The ``[bench]`` section of the configuration (configs/default.toml, configs/quick.toml)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BenchConfig:
    seed: int = 777
    """Seed of the benchmark's own test audio (texts and voices of the rendered speech, noise);
    different from training's and calibration's, so the benchmark hears audio neither saw."""
    speech_hours: float = 8.0
    """Negative speech rendered by the ``test`` (held-out) voices (h); half clean, half in noise."""
    synthetic_split: str = "test"
    """Dataset split whose speakers voice the synthetic test audio (never heard in training or
    calibration)."""
    real_keyword_clips: int = 0
    """Real keyword recordings used from ../shared/data (0 = all; fewer: evenly spaced picks)."""
    real_negative_clips: int = 0
    """Real negative recordings used from ../shared/data (0 = all)."""
    real_exclude_speakers: tuple[str, ...] = ()
    """Speakers (``manifest.csv``) whose real recordings (keyword takes and other speech) are left
    out: those a model was shown in training, e.g. the field loop's household (``bench/fieldloop.py``)."""
    fa_targets_per_hour: tuple[float, ...] = (0.5, 0.1)
    """False-accept rates at which miss rates are reported (per hour)."""
    interval_draws: int = 1000
    """Bootstrap resamples behind each miss rate's interval in the report (0: none)."""
    interval_level: float = 0.9
    """Central share of the resampled miss rates the interval spans."""
    interval_block_s: float = 60.0
    """Negative audio is resampled in blocks of this length (s): a false accept's neighbours in
    one recording are not independent of it."""
    tolerance_s: float = 1.0
    """A detection up to this long after the keyword ends still counts as a hit (s)."""
    sweep_thresholds: int = 193
    """Thresholds swept for the DET curves (evenly spaced in logit from -8 to 16)."""
    latency_hops_s: tuple[float, ...] = (0.48, 0.24, 0.08)
    """Inference steps at which detection latency (and CPU) is measured (s); whole multiples of
    the model's output frame."""
    led_keywords: int = 12
    """Keywords played in real time for the end-of-keyword -> LED edge measurement."""
    cost_audio_s: float = 1800.0
    """Audio the daemon's CPU and memory are measured on, per inference step size (s)."""
    step_cost_steps: int = 200
    """Inference steps timed by ``export.bench.step_cost`` (per-step time)."""
    keyword_counts: tuple[int, ...] = (1, 2, 4)
    """Keywords in one daemon (``[[keywords]]``, copies of the model) whose CPU and memory are measured."""
    peer_sensitivities: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 0.99)
    """Porcupine sensitivities swept for its DET curve (it has no score to threshold); each is a
    full pass over the test audio (about 13 CPU s per audio hour here)."""
    int8: bool = True
    """Also benchmark ``model.int8.onnx`` when the export kept one."""

    def __post_init__(self) -> None:
        if self.speech_hours < 0 or self.cost_audio_s <= 0 or self.tolerance_s < 0:
            raise ValueError("speech_hours and tolerance_s must be >= 0, cost_audio_s > 0")
        if not self.fa_targets_per_hour or any(t <= 0 for t in self.fa_targets_per_hour):
            raise ValueError("fa_targets_per_hour must be positive rates")
        if any(not 1 <= n <= 8 for n in self.keyword_counts):
            raise ValueError("keyword_counts must be numbers of keywords from 1 to 8")
        if not self.latency_hops_s or any(h <= 0 for h in self.latency_hops_s):
            raise ValueError("latency_hops_s must be positive step sizes")
        if any(not 0 <= s <= 1 for s in self.peer_sensitivities):
            raise ValueError("peer_sensitivities must lie in [0, 1]")
        if self.interval_draws < 0 or not 0 < self.interval_level < 1 or not 0 < self.interval_block_s < float("inf"):
            raise ValueError("interval_draws >= 0, interval_level in (0, 1) and a positive interval_block_s required")
        if self.sweep_thresholds < 2 or self.step_cost_steps < 1 or self.led_keywords < 0:
            raise ValueError("sweep_thresholds >= 2, step_cost_steps >= 1, led_keywords >= 0 required")
        if self.real_keyword_clips < 0 or self.real_negative_clips < 0:
            raise ValueError("real_keyword_clips and real_negative_clips must be >= 0 (0 = all)")
        if self.synthetic_split == "train":
            raise ValueError("synthetic_split must be a held-out split (test or val), not train")
