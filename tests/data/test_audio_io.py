"""Reading audio of any rate and channel count (train.audio_io), and bad files."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from device.params import AudioParams
from train.audio_io import AudioReadError, load_folder, read_audio, write_wav

PARAMS = AudioParams()
TONE_HZ = 440.0


def _tone(rate: int, channels: int, seconds: float = 0.5) -> np.ndarray:
    """[samples, channels]: a 440 Hz tone at 0.4 in every channel, plus a channel-specific offset
    tone at 0.1 in channel k (which the mono mean must average)."""
    t = np.arange(int(seconds * rate)) / rate
    base = 0.4 * np.sin(2 * np.pi * TONE_HZ * t)
    cols = [base + (0.1 if k % 2 == 0 else -0.1) * np.sin(2 * np.pi * 1000.0 * t) for k in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_any_rate_and_channel_count_becomes_mono_at_the_model_rate(tmp_path, rate, channels, fmt):
    path = tmp_path / f"tone.{fmt.lower()}"
    sf.write(str(path), _tone(rate, channels), rate, format=fmt, subtype="PCM_16")
    audio = read_audio(path, PARAMS)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 0.5 * PARAMS.sample_rate) <= 2
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(len(audio))))
    freqs = np.fft.rfftfreq(len(audio), 1 / PARAMS.sample_rate)
    assert abs(freqs[np.argmax(spectrum)] - TONE_HZ) < 5
    # the 1 kHz parts cancel in the mean of an even channel count and survive in an odd one
    k1000 = np.argmin(np.abs(freqs - 1000.0))
    ratio = spectrum[k1000] / spectrum.max()
    if channels % 2 == 0:
        assert ratio < 0.01
    else:
        assert ratio > 0.1 / channels * 0.5
    assert 0.35 < np.max(np.abs(audio)) < 0.65


def test_segment_reading(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(str(path), _tone(48000, 2, seconds=2.0), 48000)
    seg = read_audio(path, PARAMS, start_s=0.5, duration_s=1.0)
    assert abs(len(seg) - PARAMS.sample_rate) <= 2


def test_corrupt_missing_and_empty_files_raise_an_error_naming_the_file(tmp_path):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), 16000)
    for path in (corrupt, empty, tmp_path / "missing.wav"):
        with pytest.raises(AudioReadError) as err:
            read_audio(path, PARAMS)
        assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_folder_loader_skips_and_counts_unreadable_files(tmp_path):
    write_wav(tmp_path / "a.wav", _tone(16000, 1)[:, 0], 16000)
    sf.write(str(tmp_path / "sub_b.flac"), _tone(44100, 2), 44100)
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    (tmp_path / "notes.txt").write_text("ignored")
    found = load_folder(tmp_path, PARAMS)
    assert sorted(p.name for p, _ in found.clips) == ["a.wav", "sub_b.flac"]
    assert len(found.unreadable) == 1 and "bad.wav" in found.unreadable[0]


def test_write_wav_is_atomic_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.wav"
    write_wav(target, np.full(1600, 2.0, np.float32), 16000)  # out of range: clipped on write, not wrapped
    audio, rate = sf.read(str(target), dtype="float32")
    assert rate == 16000 and audio.max() > 0.99
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]
