"""The ``wakeword`` command end to end: ``listen --input`` JSON on tone clips (the interface the
benchmark uses), saved detections, ``doctor``, and the device side's import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from bench.tonemodel import TONE_S
from device.wavio import read_mono_float
from tests.device.daemon_helpers import PARAMS, REPO, json_lines, run_wakeword, write_config

LOG_GPIO = '[gpio]\nbackend = "log"\n'


def test_input_json_detections_on_positive_and_negative(tone_model, clips, tmp_path):
    cfg = write_config(tmp_path / "c.toml", LOG_GPIO)
    r = run_wakeword(
        ["listen", "--model", str(tone_model), "--config", str(cfg), "--input", str(clips["pos"]), "--json"]
    )
    assert r.returncode == 0, r.stderr
    dets = json_lines(r.stdout)
    assert [set(d) for d in dets] == [{"time_s", "score", "keyword"}] * 2
    for d, tone_at in zip(dets, (1.5, 4.0)):
        assert d["keyword"] == "tone" and d["score"] >= 0.5
        assert tone_at + TONE_S - 0.05 <= d["time_s"] <= tone_at + TONE_S + 0.3
    r = run_wakeword(
        ["listen", "--model", str(tone_model), "--config", str(cfg), "--input", str(clips["neg"]), "--json"]
    )
    assert r.returncode == 0 and json_lines(r.stdout) == []


def test_scores_are_one_line_per_step_at_precise_stream_times(tone_model, clips):
    r = run_wakeword(
        [
            "listen",
            "--model",
            str(tone_model),
            "--input",
            str(clips["pos"]),
            "--json",
            "--scores",
            "--threshold",
            "0.99",
        ]
    )
    assert r.returncode == 0, r.stderr
    lines = json_lines(r.stdout)
    steps = [x for x in lines if "keyword" not in x]
    times = [s["time_s"] for s in steps]
    # steps of exactly infer_every_s, then what is left of the 6 s file (whole output frames)
    assert times[:-1] == [round((k + 1) * PARAMS.infer_every_s, 6) for k in range(len(times) - 1)]
    assert times[-1] == 6.0 and 0 < times[-1] - times[-2] <= PARAMS.infer_every_s
    loud = [s["time_s"] for s in steps if s["score"] > 0.9]
    assert loud and all(1.9 <= t <= 2.5 or 4.4 <= t <= 5.0 for t in loud)
    # --threshold overrides the model's 0.5: every detection scores at least 0.99
    assert all(x["score"] >= 0.99 for x in lines if "keyword" in x)


def test_saving_detections_writes_wav_and_sidecar(tone_model, clips, tmp_path):
    out = tmp_path / "detections"
    cfg = write_config(
        tmp_path / "c.toml",
        f"""{LOG_GPIO}
[save]
enabled = true
dir = "{out}"
pre_roll_s = 1.0
post_roll_s = 0.5
""",
    )
    r = run_wakeword(["listen", "--model", str(tone_model), "--config", str(cfg), "--input", str(clips["pos"])])
    assert r.returncode == 0, r.stderr
    sidecars = sorted(out.glob("*.json"))
    assert len(sidecars) == 2
    meta = json.loads(sidecars[0].read_text())
    assert meta["keyword"] == "tone" and meta["model_version"] == "tone-test"
    audio, rate = read_mono_float(sidecars[0].with_suffix(".wav"))
    assert rate == PARAMS.sample_rate and abs(len(audio) / rate - 1.5) < 0.05
    # the tone (ending about detected_at_s into the clip) is in the saved audio
    end = int(meta["detected_at_s"] * rate)
    assert np.abs(audio[end - int(0.3 * rate) : end]).max() > 0.2


def test_room_snippets_are_kept_away_from_detections(tone_model, tmp_path):
    from bench.tonemodel import tone_clip
    from device.wavio import write_wav
    from tests.device.daemon_helpers import RATE

    # snippets come at random times (no seed in the daemon): 10 min of audio expects ~80 of them,
    # so ">= 20" cannot fail by chance (90 s expected ~10 and saw 3 once in CI)
    tones = [20.0, 50.0, 75.0, 200.0, 380.0, 555.0]
    wav = write_wav(tmp_path / "room.wav", tone_clip(600.0, tones, seed=3), RATE)
    out = tmp_path / "snippets"
    cfg = write_config(
        tmp_path / "c.toml",
        f"""{LOG_GPIO}
[snippets]
enabled = true
dir = "{out}"
per_hour = 720.0
length_s = 1.0
guard_s = 3.0
""",
    )
    r = run_wakeword(["listen", "--model", str(tone_model), "--config", str(cfg), "--input", str(wav), "--json"])
    assert r.returncode == 0, r.stderr
    dets = [d["time_s"] for d in json_lines(r.stdout)]
    assert len(dets) == len(tones)
    starts = [json.loads(p.read_text())["time_s"] for p in out.glob("*_snippet.json")]
    assert len(starts) >= 20
    for s in starts:  # nothing within guard_s of a detection
        assert all(not (s - 3.0 <= d <= s + 1.0 + 3.0) for d in dets), (s, dets)


def test_missing_or_bad_input_file_is_one_line_exit_1(tone_model, tmp_path):
    r = run_wakeword(["listen", "--model", str(tone_model), "--input", str(tmp_path / "none.wav")])
    assert r.returncode == 1 and "no such file" in r.stderr and "Traceback" not in r.stderr
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF....WAVEjunk")
    r = run_wakeword(["listen", "--model", str(tone_model), "--input", str(bad)])
    assert r.returncode == 1 and "not a PCM WAV file" in r.stderr and "Traceback" not in r.stderr


def test_doctor_reports_in_plain_words(tone_model, alsa_mics, tmp_path):
    cfg = write_config(
        tmp_path / "c.toml",
        f"""
model = "{tone_model}"
[capture]
device = "ww_quad48"
channels = 4
rate_hz = 48000
[gpio]
backend = "log"
""",
    )
    r = run_wakeword(["doctor", "--config", str(cfg)], env=alsa_mics.env())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok    model" in r.stdout and "keyword 'tone'" in r.stdout
    assert "ok    audio device 'ww_quad48' delivers audio (4 ch, 48000 Hz)" in r.stdout
    assert "warn  GPIO backend 'log'" in r.stdout and "all good" in r.stdout
    r = run_wakeword(
        ["doctor", "--config", str(cfg), "--model", str(tmp_path / "gone.onnx"), "--device", "no-such-mic"],
        env=alsa_mics.env(),
    )
    assert r.returncode == 1
    assert "FAIL  model" in r.stdout and "does not exist" in r.stdout
    assert "FAIL  no audio input device matches 'no-such-mic'" in r.stdout
    assert "2 problem(s) found" in r.stdout


def test_device_code_imports_no_torch_and_nothing_from_the_workstation_side():
    code = (
        "import sys, pkgutil, importlib, device\n"
        "for m in pkgutil.iter_modules(device.__path__):\n"
        "    if m.name != 'record': importlib.import_module('device.' + m.name)\n"
        "bad = sorted(n for n in sys.modules if n.split('.')[0] in "
        "('torch', 'train', 'export', 'bench', 'RPi', 'systemd'))\n"
        "print(bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_wav_can_stand_in_for_the_microphone_at_real_time(tone_model, tmp_path):
    """``device = "file:..."`` (test rigs without audio hardware): paced at 1x, ends at its end."""
    import time

    from bench.tonemodel import tone_clip
    from device.wavio import write_wav
    from tests.device.daemon_helpers import RATE

    clip = tmp_path / "mic.wav"
    write_wav(clip, tone_clip(2.5, [0.5], seed=12), RATE)
    cfg = write_config(tmp_path / "c.toml", f'{LOG_GPIO}[capture]\ndevice = "file:{clip}"\n')
    t0 = time.monotonic()
    r = run_wakeword(["listen", "--model", str(tone_model), "--config", str(cfg), "--json"])
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 >= 2.5  # paced, not as fast as possible
    dets = json_lines(r.stdout)
    assert len(dets) == 1 and 0.9 <= dets[0]["time_s"] <= 1.3


def test_version_is_one_line():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "device.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("wakeword ") and len(out.stdout.splitlines()) == 1


def test_input_that_is_a_fifo_is_one_line_not_a_hang(tmp_path, tone_model):
    import os
    import subprocess
    import sys

    fifo = tmp_path / "mic.wav"
    os.mkfifo(fifo)
    out = subprocess.run(
        [sys.executable, "-m", "device.cli", "listen", "--model", str(tone_model), "--input", str(fifo)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1 and "not a regular file" in out.stderr and "Traceback" not in out.stderr
