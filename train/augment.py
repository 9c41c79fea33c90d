"""Augmentation of utterances and clips: speed, pitch, rooms, microphone colouring, SNR, level.

All functions take and return float32 mono ``[samples]`` at the given rate and draw their
randomness from the ``np.random.Generator`` they are handed. Nothing here clips: levels are
set by scaling, and the final clip is scaled to a peak below 0 dBFS (:func:`to_peak_dbfs`).

Room impulse responses come from pyroomacoustics shoebox rooms (image sources + ray tracing
for the late tail), generated once per split (:func:`simulate_rirs`, in parallel chunks) and cached
(:func:`load_room_bank` / :func:`save_room_bank`).

Measured on this 2-core machine (one core): resampling speed change of a 1 s word 0.3 ms,
librosa pitch shift 9 ms, one RIR 0.07-0.4 s (so the bank is cached). That is why this module
uses soxr/librosa/scipy directly rather than adding audiomentations.
"""

from __future__ import annotations

import logging
from pathlib import Path

import librosa
import numpy as np
import soxr
from scipy import signal

log = logging.getLogger(__name__)

MAX_TAIL_S = 0.5
"""Reverb tail kept after the dry utterance ends (s); faded out, so footprints stay short."""


def change_speed(audio: np.ndarray, factor: float, sample_rate: int) -> np.ndarray:
    """Play ``factor`` times faster (tempo and pitch together); length becomes ``len / factor``."""
    if abs(factor - 1.0) < 1e-6:
        return audio
    return soxr.resample(audio, sample_rate * factor, sample_rate, quality="HQ").astype(np.float32)


def shift_pitch(audio: np.ndarray, semitones: float, sample_rate: int) -> np.ndarray:
    """Shift pitch by ``semitones`` keeping the length (phase vocoder)."""
    if abs(semitones) < 1e-3:
        return audio
    out = librosa.effects.pitch_shift(audio, sr=sample_rate, n_steps=semitones, res_type="soxr_hq")
    return out.astype(np.float32)


def shift_formants(audio: np.ndarray, ratio: float, sample_rate: int, seed: int) -> np.ndarray:
    """Scale the formants (the vocal tract's resonances) by ``ratio``, keeping pitch and length:
    another speaker's tract saying the same thing (Praat's "Change gender": resampling + PSOLA,
    through praat-parselmouth). Audio too short for a pitch analysis comes back unchanged.

    PSOLA places the pulses of unvoiced stretches at random, from Praat's own generator (one per
    process), which is seeded with ``seed`` first: the same call gives the same samples."""
    if abs(ratio - 1.0) < 1e-3:
        return audio
    import warnings

    import parselmouth
    from parselmouth.praat import call, run

    run(f"random_initializeWithSeedUnsafelyButPredictably ({int(seed)})")

    sound = parselmouth.Sound(audio.astype(np.float64), sampling_frequency=sample_rate)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no voiced segments found": the audio comes back as it was
            out = call(sound, "Change gender", 75, 600, ratio, 0, 1, 1).values[0]
    except parselmouth.PraatError:
        return audio
    if len(out) != len(audio) or not np.all(np.isfinite(out)):
        return audio
    return out.astype(np.float32)


def add_reverb(audio: np.ndarray, rir: np.ndarray, sample_rate: int) -> np.ndarray:
    """Convolve with ``rir`` (direct path at index 0), keep at most ``MAX_TAIL_S`` of tail.

    Output length ``len(audio) + tail``; its RMS over the dry part matches the input's, so
    reverb changes the sound, not the level the mixer then sets.
    """
    wet = signal.fftconvolve(audio, rir)[: len(audio) + int(MAX_TAIL_S * sample_rate)]
    fade = min(len(wet) - len(audio), int(0.05 * sample_rate))
    if fade > 0:
        wet[len(wet) - fade :] *= np.linspace(1.0, 0.0, fade)
    dry_rms = _rms(audio)
    wet_rms = _rms(wet[: len(audio)])
    return (wet * (dry_rms / wet_rms if wet_rms > 0 else 1.0)).astype(np.float32)


def colour(audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A random microphone/channel colouring: high-pass 40-300 Hz, low-pass 3-7.5 kHz."""
    nyquist = sample_rate / 2
    low = float(rng.uniform(40, 300))
    high = float(min(rng.uniform(3000, 7500), 0.95 * nyquist))
    sos = signal.butter(2, [low, high], btype="bandpass", fs=sample_rate, output="sos")
    return signal.sosfilt(sos, audio).astype(np.float32)


def mic_eq(
    audio: np.ndarray, sample_rate: int, rng: np.random.Generator, max_gain_db: float = 6.0, max_bands: int = 3
) -> np.ndarray:
    """A random microphone/housing response: 1..``max_bands`` peaking filters (RBJ biquads) at
    log-uniform 150 Hz..6 kHz, gains within +-``max_gain_db``, Q 0.7..3. Real laptop, USB and
    MEMS microphones have resonances and dips like these that TTS audio never does."""
    out = np.asarray(audio, np.float64)
    for _ in range(int(rng.integers(1, max_bands + 1))):
        f0 = float(np.exp(rng.uniform(np.log(150.0), np.log(min(6000.0, 0.45 * sample_rate)))))
        gain_db, q = float(rng.uniform(-max_gain_db, max_gain_db)), float(rng.uniform(0.7, 3.0))
        a_gain, w0 = 10 ** (gain_db / 40), 2 * np.pi * f0 / sample_rate
        alpha = np.sin(w0) / (2 * q)
        b = [1 + alpha * a_gain, -2 * np.cos(w0), 1 - alpha * a_gain]
        a = [1 + alpha / a_gain, -2 * np.cos(w0), 1 - alpha / a_gain]
        out = signal.lfilter(np.array(b) / a[0], np.array(a) / a[0], out)
    return out.astype(np.float32)


def band_limit(audio: np.ndarray, sample_rate: int, rate_hz: int) -> np.ndarray:
    """As if recorded at ``rate_hz`` and resampled (what an 8 kHz telephone or Bluetooth-headset
    source sounds like): nothing above ``rate_hz / 2``. Same length as the input."""
    if rate_hz >= sample_rate:
        return audio
    low = soxr.resample(audio, sample_rate, rate_hz, quality="HQ")
    back = soxr.resample(low, rate_hz, sample_rate, quality="HQ")
    out = np.zeros(len(audio), np.float32)
    out[: min(len(back), len(audio))] = back[: len(audio)]
    return out


def telephone(audio: np.ndarray, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """A telephone line: the 300-3400 Hz voice band, 8 kHz sampling and 8-bit mu-law (G.711)
    companding at a random line level, back at ``sample_rate``. Same length as the input.
    Landline and many mobile calls sound like this; so do intercoms and cheap USB headsets."""
    if sample_rate <= 8000:
        return audio
    sos = signal.butter(
        4,
        [float(rng.uniform(200, 400)), float(rng.uniform(3200, 3500))],
        btype="bandpass",
        fs=sample_rate,
        output="sos",
    )
    narrow = signal.sosfilt(sos, np.asarray(audio, np.float64))
    low = soxr.resample(narrow.astype(np.float32), sample_rate, 8000, quality="HQ")
    peak = float(np.max(np.abs(low))) or 1.0
    level = 10 ** (float(rng.uniform(-20.0, -3.0)) / 20) / peak  # where the line's peak sits
    x = np.clip(low * level, -1.0, 1.0)
    mu = 255.0
    code = np.round(np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu) * 127) / 127  # 8 bits
    decoded = np.sign(code) * np.expm1(np.abs(code) * np.log1p(mu)) / mu / level
    back = soxr.resample(decoded.astype(np.float32), 8000, sample_rate, quality="HQ")
    out = np.zeros(len(audio), np.float32)
    out[: min(len(back), len(audio))] = back[: len(audio)]
    return out


def scale_to_snr(speech_rms: float, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """Scale ``noise`` so that ``20 log10(speech_rms / rms(noise)) == snr_db``."""
    noise_rms = _rms(noise)
    if noise_rms == 0 or speech_rms == 0:
        return noise
    return (noise * (speech_rms / noise_rms / 10 ** (snr_db / 20))).astype(np.float32)


def to_peak_dbfs(audio: np.ndarray, peak_dbfs: float) -> np.ndarray:
    """Scale so the absolute peak is ``peak_dbfs`` (<= 0): never clips, whatever went before."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    if peak == 0:
        return audio
    return (audio * (10 ** (min(peak_dbfs, 0.0) / 20) / peak)).astype(np.float32)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


# -- rooms ------------------------------------------------------------------------------
def simulate_rir(sample_rate: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """One impulse response of a random shoebox room with reverberation time ``rt60_s``.

    float32 ``[samples]``, starting at the direct path (propagation delay removed, so an
    utterance's timing, and hence its label, is unchanged by the room).
    """
    import pyroomacoustics as pra

    pra.random.seed(int(rng.integers(2**31)))  # its ray tracer draws from its own generators
    dims = np.array([rng.uniform(3, 10), rng.uniform(2.5, 8), rng.uniform(2.4, 4)])
    try:
        absorption, max_order = pra.inverse_sabine(rt60_s, dims)
    except ValueError:  # room too small for that long a reverberation: make it livelier instead
        absorption, max_order = 0.05, 17
    room = pra.ShoeBox(
        dims,
        fs=sample_rate,
        materials=pra.Material(absorption),
        max_order=min(max_order, 3),
        ray_tracing=True,
        air_absorption=True,
    )
    room.set_ray_tracing(receiver_radius=0.5, n_rays=1500)
    margin = 0.5
    room.add_source(rng.uniform(margin, dims - margin))
    room.add_microphone(rng.uniform(margin, dims - margin))
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], dtype=np.float64)
    rir = rir[max(0, int(np.argmax(np.abs(rir))) - 8) :]
    return (rir / np.max(np.abs(rir))).astype(np.float32)


def simulate_rirs(task: tuple[int, tuple[float, float], int, list[int]]) -> list[np.ndarray]:
    """Rooms ``indices`` of a bank: ``(sample_rate, (rt60_min_s, rt60_max_s), seed, indices)``.
    Room ``i`` depends only on ``(seed, i)``, so a bank can be made in chunks on many workers."""
    sample_rate, (rt60_min, rt60_max), seed, indices = task
    out = []
    for i in indices:
        rng = np.random.default_rng([seed, i])
        out.append(simulate_rir(sample_rate, float(rng.uniform(rt60_min, rt60_max)), rng))
    return out


def load_room_bank(path: str | Path, count: int, sample_rate: int) -> list[np.ndarray] | None:
    """The cached bank at ``path`` if it holds ``count`` rooms at ``sample_rate``, else None."""
    path = Path(path)
    if not path.exists():
        return None
    with np.load(path) as data:
        if int(data["count"]) == count and int(data["sample_rate"]) == sample_rate:
            return np.split(data["samples"], data["offsets"][1:-1])
    return None


def save_room_bank(path: str | Path, rirs: list[np.ndarray], sample_rate: int) -> None:
    from device.fsutil import atomic_path

    offsets = np.cumsum([0] + [len(r) for r in rirs])
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, samples=np.concatenate(rirs), offsets=offsets, count=len(rirs), sample_rate=sample_rate)
