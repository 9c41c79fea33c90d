"""Real PyAudio callback capture from file-backed ALSA devices (no sound card needed), through
the real ``wakeword listen`` command: 1 and 4 channels at 48 kHz, channel pick, a negative,
and a device that is missing at start and appears later.

The ALSA ``file`` plugin is not paced, so the configs give the queue room for the whole clip
(``queue_s``/``stale_after_s`` above its length) and the runs stop by frame count."""

from __future__ import annotations

import time

import pytest

from bench.tonemodel import TONE_S
from tests.device.daemon_helpers import json_lines, popen_wakeword, run_wakeword, write_config

UNPACED = "queue_s = 30.0\nstale_after_s = 30.0\n"


def capture_config(tmp_path, device: str, channels: int, use_channels: str = "[]", extra: str = ""):
    return write_config(
        tmp_path / f"{device}.toml",
        f"""
[capture]
device = "{device}"
channels = {channels}
rate_hz = 48000
use_channels = {use_channels}
{UNPACED}{extra}
[gpio]
backend = "log"
""",
    )


def listen(tone_model, alsa_mics, cfg, seconds: float = 6.0):
    r = run_wakeword(
        ["listen", "--model", str(tone_model), "--config", str(cfg), "--json", "--max-audio-s", str(seconds)],
        env=alsa_mics.env(),
    )
    assert r.returncode == 0, r.stderr
    return json_lines(r.stdout), r.stderr


def assert_two_tones(dets):
    assert [d["keyword"] for d in dets] == ["tone", "tone"], dets
    for d, tone_at in zip(dets, (1.5, 4.0)):
        assert tone_at + TONE_S - 0.05 <= d["time_s"] <= tone_at + TONE_S + 0.3


@pytest.mark.parametrize("device,channels,use", [("ww_mono48", 1, "[]"), ("ww_quad48", 4, "[2]")])
def test_positive_clip_through_alsa_gives_detections(tone_model, alsa_mics, tmp_path, device, channels, use):
    dets, stderr = listen(tone_model, alsa_mics, capture_config(tmp_path, device, channels, use))
    assert_two_tones(dets)
    assert f"listening on '{device}' ({channels} ch, 48000 Hz -> 16000 Hz mono" in stderr


def test_negatives_give_nothing(tone_model, alsa_mics, tmp_path):
    # the 4-channel negative clip, and the positive one listened to on a channel without the tone
    dets, _ = listen(tone_model, alsa_mics, capture_config(tmp_path, "ww_neg48", 4, "[2]"))
    assert dets == []
    dets, _ = listen(tone_model, alsa_mics, capture_config(tmp_path, "ww_quad48", 4, "[0]"))
    assert dets == []


def test_devices_lists_the_file_backed_microphones(alsa_mics):
    r = run_wakeword(["devices", "--json"], env=alsa_mics.env())
    assert r.returncode == 0, r.stderr
    names = {d["name"]: d for d in json_lines(r.stdout)}
    assert {"ww_mono48", "ww_quad48", "ww_neg48"} <= set(names)
    assert "ww_late" not in names  # its file does not exist: not an input device
    assert names["ww_quad48"]["channels"] >= 4


def test_missing_device_is_retried_and_recovered_when_it_appears(tone_model, alsa_mics, tmp_path):
    late = alsa_mics.raw("ww_late")
    late.unlink(missing_ok=True)
    cfg = capture_config(tmp_path, "ww_late", 4, "[2]", "retry_min_s = 0.2\nretry_max_s = 0.4\n")
    proc = popen_wakeword(
        ["listen", "--model", str(tone_model), "--config", str(cfg), "--json", "--max-audio-s", "6"],
        env=alsa_mics.env(),
    )
    try:
        time.sleep(1.5)  # several failed attempts
        assert proc.poll() is None, proc.communicate()
        late.write_bytes(alsa_mics.raw("ww_quad48").read_bytes())  # plugged in
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert [d["keyword"] for d in json_lines(out)] == ["tone", "tone"]
    warnings = [line for line in err.splitlines() if "no audio input device matches 'ww_late'" in line]
    assert len(warnings) == 1, err  # logged once per state change, not per attempt
    assert "back: listening on 'ww_late'" in err


def test_no_portaudio_scan_while_the_device_is_away(alsa_mics, monkeypatch):
    """Each PortAudio initialisation keeps ~13 KiB (docs/soak.md); while the device is away, the
    reconnection attempts ask alsa-lib first and scan only when the device may be back."""
    from device import capture
    from device.capture import AlsaProbe, Capture, DeviceNotFound, Rescan, alsa_pcm_name

    monkeypatch.setenv("ALSA_CONFIG_PATH", alsa_mics.env()["ALSA_CONFIG_PATH"])
    inits = []
    real_pyaudio = capture._pyaudio
    monkeypatch.setattr(capture, "_pyaudio", lambda quiet=True: inits.append(1) or real_pyaudio(quiet))
    now, cards = [0.0], [b"0 [PCH ]: HDA-Intel\n"]
    rescan = Rescan(every_s=100.0, probe=AlsaProbe(), cards=lambda: cards[0], clock=lambda: now[0])
    late = alsa_mics.raw("ww_late")
    late.unlink(missing_ok=True)

    def attempt() -> str:
        cap = Capture("ww_late", 4, 48000, session=len(inits), rescan=rescan)
        try:
            cap.open(1.0)
        except DeviceNotFound as exc:
            return str(exc)
        finally:
            cap.close()
        return "opened"

    try:
        assert "no audio input device matches 'ww_late'" in attempt()  # the first attempt always scans
        assert len(inits) == 1
        for _ in range(3):
            now[0] += 2.0
            why = attempt()
            assert why == "audio device 'ww_late' is not there (ALSA cannot open 'ww_late': No such file or directory)"
        assert len(inits) == 1 and rescan.skipped == 3
        late.write_bytes(alsa_mics.raw("ww_quad48").read_bytes())  # plugged in: ALSA opens it, so a scan
        assert attempt() == "opened" and len(inits) == 2 and rescan.known == "ww_late"
        late.unlink()  # away again
        assert attempt().endswith("No such file or directory)") and len(inits) == 2
        now[0] += 100.0  # what neither probe sees is found by a scan every `every_s`
        assert "no audio input device matches" in attempt() and len(inits) == 3
        assert "is not there" in attempt() and len(inits) == 3
        cards[0] += b"1 [Device ]: USB-Audio - USB PnP Sound Device\n"  # a card came: scan
        assert "no audio input device matches" in attempt() and len(inits) == 4
        assert "is not there" in attempt() and len(inits) == 4
    finally:
        late.unlink(missing_ok=True)
    assert alsa_pcm_name("USB PnP Sound Device: Audio (hw:1,0)") == "hw:1,0"
    assert alsa_pcm_name("pulse") == "pulse" and alsa_pcm_name(" ") == "default"
