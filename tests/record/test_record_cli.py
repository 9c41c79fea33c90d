"""`wakeword record` end to end: real PyAudio capture (device/capture.py) from file-backed ALSA
devices replaying espeak-ng speech, mono at the model rate and a 4-channel array at 48 kHz."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from device.speech import SpeechConfig
from tests.record.record_helpers import (
    RATE,
    as_device_audio,
    make_alsa_mic,
    record_from_mic,
    run_record,
    spoken_takes,
)

PAD_S = SpeechConfig().pad_ms / 1000
SPAN_TOL_S = 0.05
"""Frame-aligned edges and resampling blur the spoken part by a frame or two."""


def best_match(saved: np.ndarray, word: np.ndarray) -> float:
    """Peak normalised cross-correlation of the saved take with the word (1.0 = identical shape)."""
    corr = np.correlate(saved, word, mode="full")
    return float(np.max(np.abs(corr)) / (np.linalg.norm(saved) * np.linalg.norm(word)))


@pytest.mark.parametrize("channels, rate_hz", [(1, RATE), (4, 48000)])
def test_takes_from_an_alsa_device_are_trimmed_16k_mono(tmp_path, word, channels, rate_hz):
    takes = 3
    mono = spoken_takes(word, takes)
    mic = make_alsa_mic(tmp_path / "alsa", f"wwrec{channels}", as_device_audio(mono, channels, rate_hz), rate_hz)
    out = tmp_path / "recordings" / "computer"
    result = record_from_mic(mic, out, takes)
    assert result.returncode == 0, result.stderr
    wavs = sorted((out / "positive").glob("*.wav"))
    assert len(wavs) == takes, result.stdout
    speech = word.audio[round(word.start_s * RATE) : round(word.end_s * RATE)]
    for wav in wavs:
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
        assert abs(info.duration - (word.speech_s + 2 * PAD_S)) <= SPAN_TOL_S + 0.02
        meta = json.loads(wav.with_suffix(".json").read_text())
        start, end = meta["speech_span_s"]
        assert abs((end - start) - word.speech_s) <= SPAN_TOL_S
        assert meta["device"] == {
            "name": mic.name,
            "channels": channels,
            "rate_hz": rate_hz,
            "use_channels": list(range(channels)),
        }
        assert meta["sample_rate"] == RATE and meta["ended_by"] == "silence"
        saved, _ = sf.read(wav, dtype="float32")
        assert best_match(saved, speech) > 0.9
    assert not list(out.rglob(".*.tmp")), "no temp files left behind"


def test_one_channel_of_an_array_can_be_picked(tmp_path, word):
    """--use-channels 3: only the quietest channel is kept, so the takes are quieter than a mix."""
    mono = spoken_takes(word, 1)
    mic = make_alsa_mic(tmp_path / "alsa", "wwpick", as_device_audio(mono, 4, 48000), 48000)
    levels = {}
    for use in ("0", "3"):
        out = tmp_path / f"use{use}"
        result = record_from_mic(mic, out, 1, "--use-channels", use)
        assert result.returncode == 0, result.stderr
        meta = json.loads(next((out / "positive").glob("*.json")).read_text())
        assert meta["device"]["use_channels"] == [int(use)]
        levels[use] = meta["speech_dbfs"]
    assert levels["0"] - levels["3"] == pytest.approx(20 * np.log10(1.0 / 0.6), abs=0.5)


def test_input_ending_early_is_reported(tmp_path, word):
    mono = spoken_takes(word, 1)
    mic = make_alsa_mic(tmp_path / "alsa", "wwshort", as_device_audio(mono, 1, RATE), RATE)
    out = tmp_path / "rec"
    result = record_from_mic(mic, out, 3)
    assert result.returncode == 1
    assert "input ended after 1 of 3 takes" in result.stderr
    assert len(list((out / "positive").glob("*.wav"))) == 1


def test_unknown_device_is_one_clear_line(tmp_path, word):
    mic = make_alsa_mic(tmp_path / "alsa", "wwthere", as_device_audio(spoken_takes(word, 1), 1, RATE), RATE)
    result = run_record(
        ["--keyword", "computer", "--out", str(tmp_path / "rec"), "--device", "no-such-mic", "--yes"], env=mic.env()
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "no-such-mic" in result.stderr and "wwthere" in result.stderr
    assert not (tmp_path / "rec").exists()


def test_interactive_keep_and_redo_from_a_wav_file(tmp_path, word):
    """Answers on stdin: start, redo, start, keep, start, keep -> the 2nd and 3rd words kept."""
    wav = tmp_path / "takes.wav"
    sf.write(wav, spoken_takes(word, 3), RATE, subtype="PCM_16")
    out = tmp_path / "rec"
    result = run_record(
        ["--keyword", "computer", "--out", str(out), "--takes", "2", "--input", str(wav)],
        input="\nr\n\n\n\n\n",
        stdin=None,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("take 1/2") == 2 and result.stdout.count("take 2/2") == 1
    takes = sorted(json.loads(p.read_text())["take"] for p in (out / "positive").glob("*.json"))
    assert takes == [1, 2]


def test_closed_stdin_while_asking_stops_cleanly(tmp_path, word):
    wav = tmp_path / "takes.wav"
    sf.write(wav, spoken_takes(word, 1), RATE, subtype="PCM_16")
    result = run_record(["--keyword", "computer", "--out", str(tmp_path / "rec"), "--input", str(wav)])
    assert result.returncode == 130
    assert "interrupted" in result.stderr and "Traceback" not in result.stderr


def test_device_settings_come_from_the_daemon_config(tmp_path, word):
    """--config /etc/wakeword/config.toml on a Pi: its [capture] picks device, channels, rate, channel."""
    mono = spoken_takes(word, 1)
    mic = make_alsa_mic(tmp_path / "alsa", "wwcfg", as_device_audio(mono, 4, 48000), 48000)
    config = tmp_path / "config.toml"
    config.write_text(f'[capture]\ndevice = "{mic.name}"\nchannels = 4\nrate_hz = 48000\nuse_channels = [1]\n')
    out = tmp_path / "rec"
    result = record_from_mic(mic, out, 1, config=config)
    assert result.returncode == 0, result.stderr
    meta = json.loads(next((out / "positive").glob("*.json")).read_text())
    assert meta["device"] == {"name": mic.name, "channels": 4, "rate_hz": 48000, "use_channels": [1]}
    config.write_text("[capture]\nchanels = 4\n")
    result = run_record(["--keyword", "computer", "--out", str(out), "--yes", "--config", str(config)])
    assert result.returncode == 2 and "chanels" in result.stderr and "Traceback" not in result.stderr
