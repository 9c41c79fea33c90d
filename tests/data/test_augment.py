"""Augmentation and generated backgrounds (train.augment, train.backgrounds) on real signals."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from train import augment, backgrounds

SR = 16000


def _tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return (0.3 * np.sin(2 * np.pi * hz * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SR)[np.argmax(spec)])


@pytest.mark.parametrize("factor", [0.88, 1.0, 1.12])
def test_speed_changes_length_and_pitch_together(factor):
    out = augment.change_speed(_tone(500), factor, SR)
    assert abs(len(out) - SR / factor) <= 2
    assert abs(_peak_hz(out) - 500 * factor) < 6


@pytest.mark.parametrize("semitones", [-2.5, 2.0])
def test_pitch_shift_keeps_length(semitones):
    out = augment.shift_pitch(_tone(500), semitones, SR)
    assert len(out) == SR
    assert abs(_peak_hz(out) - 500 * 2 ** (semitones / 12)) < 10


def test_rooms_are_reproducible_whatever_the_chunking_and_start_at_the_direct_path():
    both = augment.simulate_rirs((SR, (0.2, 0.8), 3, [0, 1]))
    alone = augment.simulate_rirs((SR, (0.2, 0.8), 3, [1]))
    assert np.array_equal(both[1], alone[0])
    for rir in both:
        assert int(np.argmax(np.abs(rir))) <= 8 and np.max(np.abs(rir)) == pytest.approx(1.0)
        assert 0.05 * SR < len(rir) < 3 * SR


def test_reverb_keeps_the_level_and_bounds_the_tail():
    rir = augment.simulate_rirs((SR, (0.6, 0.6), 1, [0]))[0]
    dry = _tone(300, 0.5)
    wet = augment.add_reverb(dry, rir, SR)
    assert len(dry) < len(wet) <= len(dry) + augment.MAX_TAIL_S * SR
    rms = lambda x: float(np.sqrt(np.mean(x**2)))  # noqa: E731
    assert rms(wet[: len(dry)]) == pytest.approx(rms(dry), rel=1e-3)
    assert abs(wet[-1]) < 1e-6  # faded out, no click


@settings(max_examples=50, deadline=None)
@given(snr_db=st.floats(-10, 60), peak_dbfs=st.floats(-60, 0), gain=st.floats(0.01, 100))
def test_mixing_reaches_the_snr_and_never_clips(snr_db, peak_dbfs, gain):
    rng = np.random.default_rng(0)
    speech = _tone(400, 0.2) * gain
    noise = backgrounds.coloured_noise(len(speech), 1.0, rng) * gain
    scaled = augment.scale_to_snr(float(np.sqrt(np.mean(speech**2))), noise, snr_db)
    got = 20 * np.log10(np.sqrt(np.mean(speech**2)) / np.sqrt(np.mean(scaled**2)))
    assert got == pytest.approx(snr_db, abs=1e-3)
    out = augment.to_peak_dbfs(speech + scaled, peak_dbfs)
    assert np.max(np.abs(out)) == pytest.approx(10 ** (peak_dbfs / 20), rel=1e-4)
    assert np.max(np.abs(out)) <= 1.0


def test_colouring_band_limits():
    rng = np.random.default_rng(1)
    white = backgrounds.coloured_noise(SR * 2, 0.0, rng)
    out = augment.colour(white, SR, rng)
    spec = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / SR)
    assert spec[freqs < 20].sum() < 0.01 * spec.sum() and spec[freqs > 7900].sum() < 0.01 * spec.sum()


@pytest.mark.parametrize("rate_hz", [8000, 11025])
def test_band_limit_removes_what_a_low_rate_source_cannot_carry(rate_hz):
    white = backgrounds.coloured_noise(SR * 2, 0.0, np.random.default_rng(3))
    out = augment.band_limit(white, SR, rate_hz)
    assert out.shape == white.shape and out.dtype == np.float32
    spec = np.abs(np.fft.rfft(out)) ** 2
    freqs = np.fft.rfftfreq(len(out), 1 / SR)
    assert spec[freqs > rate_hz / 2 + 200].sum() < 1e-3 * spec.sum()
    # what the source could carry survives
    below = (freqs > 300) & (freqs < rate_hz / 2 - 500)
    ref = np.abs(np.fft.rfft(white)) ** 2
    assert 0.9 < spec[below].sum() / ref[below].sum() < 1.1
    assert augment.band_limit(white, SR, SR) is white


def test_mic_eq_shapes_the_spectrum_within_its_gain_bound():
    rng = np.random.default_rng(4)
    white = backgrounds.coloured_noise(SR * 4, 0.0, rng)
    out = augment.mic_eq(white, SR, rng, max_gain_db=6.0)
    assert out.shape == white.shape and np.isfinite(out).all()
    # per-band level changes: something moves, nothing beyond the bound of 3 stacked filters
    edges = np.geomspace(150, 6000, 12)
    freqs = np.fft.rfftfreq(len(out), 1 / SR)
    a, b = np.abs(np.fft.rfft(white)) ** 2, np.abs(np.fft.rfft(out)) ** 2
    change_db = [
        10 * np.log10(b[(freqs >= lo) & (freqs < hi)].sum() / a[(freqs >= lo) & (freqs < hi)].sum())
        for lo, hi in zip(edges[:-1], edges[1:])
    ]
    assert max(abs(c) for c in change_db) > 0.5
    assert max(abs(c) for c in change_db) < 3 * 6.0 + 0.5


@pytest.mark.parametrize("alpha, low_share", [(0.0, (0.05, 0.2)), (2.0, (0.8, 1.0))])
def test_noise_colour(alpha, low_share):
    noise = backgrounds.coloured_noise(SR * 4, alpha, np.random.default_rng(2))
    assert noise.dtype == np.float32 and np.std(noise) == pytest.approx(1.0, rel=1e-3)
    spec = np.abs(np.fft.rfft(noise)) ** 2
    share = spec[np.fft.rfftfreq(len(noise), 1 / SR) < 1000].sum() / spec.sum()
    assert low_share[0] < share < low_share[1]  # white: 1/8 of the band; brown: nearly all below 1 kHz


def test_hum_and_babble():
    rng = np.random.default_rng(3)
    hum = backgrounds.hum(SR * 2, SR, rng)
    f = _peak_hz(hum)
    assert min(abs(f - k * base) for base in (50, 60) for k in range(1, 6)) < 1  # mains or a harmonic
    voices = [_tone(f, 0.4) for f in (200, 330, 450)]
    babble = backgrounds.babble(SR * 3, voices, rng)
    assert babble.shape == (SR * 3,) and np.std(babble) == pytest.approx(1.0, rel=1e-3)
    frames = babble.reshape(-1, 1600)
    assert (np.std(frames, axis=1) > 0.1).mean() > 0.5  # talkers spread over the clip, not one burst


def _vowel(f0: float, formants: tuple[float, ...], seconds: float = 1.0) -> np.ndarray:
    """A pulse train at ``f0`` through one resonator per formant: a crude sustained vowel."""
    from scipy import signal

    x = np.zeros(int(SR * seconds))
    x[:: int(SR / f0)] = 1.0
    for f in formants:
        r = np.exp(-np.pi * 80 / SR)  # 80 Hz bandwidth
        x = signal.lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * f / SR), r * r], x)
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def _envelope_peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    smooth = np.convolve(spec, np.ones(300) / 300, mode="same")  # ~300 Hz: over the harmonics
    return float(np.argmax(smooth) * SR / len(x))


def _f0_hz(x: np.ndarray) -> float:
    ac = np.correlate(x[:4000], x[:4000], mode="full")[3999:]
    lo, hi = SR // 400, SR // 60
    return SR / (lo + int(np.argmax(ac[lo:hi])))


@pytest.mark.parametrize("ratio", [0.85, 1.2])
def test_formant_shift_moves_the_resonance_and_keeps_pitch_and_length(ratio):
    vowel = _vowel(100.0, (1000.0,))
    out = augment.shift_formants(vowel, ratio, SR, seed=1)
    assert len(out) == len(vowel) and out.dtype == np.float32
    # near where the same pulse train through a resonator at ratio x 1000 Hz peaks, far from where it was
    assert _envelope_peak_hz(out) == pytest.approx(_envelope_peak_hz(_vowel(100.0, (1000.0 * ratio,))), abs=80)
    assert abs(_envelope_peak_hz(out) - _envelope_peak_hz(vowel)) > 100
    assert _f0_hz(out) == pytest.approx(_f0_hz(vowel), rel=0.04)


def test_formant_shift_is_the_same_for_the_same_seed():
    vowel = _vowel(100.0, (1000.0,))
    a, b, c = (augment.shift_formants(vowel, 1.15, SR, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a, b) and not np.array_equal(a, c)  # Praat's PSOLA draws from its own generator


def test_formant_shift_leaves_what_it_cannot_analyse_as_it_was():
    short = np.random.default_rng(0).normal(0, 0.1, 300).astype(np.float32)  # too short for a pitch analysis
    assert augment.shift_formants(short, 1.2, SR, seed=1) is short
    assert augment.shift_formants(_vowel(100.0, (1000.0,)), 1.0, SR, seed=1).dtype == np.float32
