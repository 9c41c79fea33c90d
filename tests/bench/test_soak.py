"""The soak bench (``make soak``): a half-minute soak of the real daemon on the live (paced) capture
path with every fault injected once, judged by its report; and the pure parts (fault plan, matching).

No wall-clock assertions: the bench waits on the daemon's own lines and notify messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import Settings, SoakError, failure_details, plan_faults
from bench.soakaudio import Event
from bench.soakdaemon import Detection
from bench.soakreport import daemon_lateness, heard_offline, hearing_verdict, match, offset_spread
from bench.soakrun import OFFSETS_MS, _delayed

REPO = Path(__file__).resolve().parents[2]
SHORT = [
    "--minutes",
    "0.85",
    "--every-s",
    "4",
    "--gap-s",
    "2",
    "--stall-s",
    "1.5",
    "--queue-s",
    "2",
    "--overrun-s",
    "3",
    "--loss-s",
    "1.5",
    "--retry-max-s",
    "0.5",
    "--full-disk-s",
    "5",
    "--hook-timeout-s",
    "1",
    "--disk-mib",
    "1",
    "--no-audio-s",
    "1",
    "--wedge-s",
    "8",
    "--watchdog-s",
    "5",
]


@pytest.mark.needs_program("/usr/bin/pulseaudio", "pulseaudio pulseaudio-utils")
def test_a_short_soak_with_every_fault_passes_and_reports_its_figures(tone_model, tmp_path):
    out = tmp_path / "soak"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--model", str(tone_model), "--out", str(out), *SHORT],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    res = json.loads((out / "soak.json").read_text())
    assert (out / "soak-report.md").read_text().startswith("# Soak: 'tone'")
    assert res["code"] == str(REPO / "device")  # this checkout's daemon, not an installed copy
    crit = {c["name"]: c["ok"] for c in res["criteria"]}
    for name in (
        "no crash",
        "clean stop on SIGTERM",
        "no late detection",
        "every audible keyword detected (up to the frame-offset spread)",
        "device loss recovered",
        "hung hook killed, nothing left",
        "saves whole after SIGTERM mid-save",
        "wedged device: watchdog restart, then listening",
        "watchdog kept pinging",
    ):
        assert crit[name] is True, (name, res["criteria"])
    assert crit["memory growth <= 1 MiB/h"] is None  # half a minute is too short to judge

    f = res["figures"]
    assert f["late"] == 0 and f["missed"] == 0 and f["expected"] >= 1 and f["excluded_outage"] >= 1
    assert f["unexpected"] == 0 and f["live_detections"] >= 4
    assert f["audible_offline"] == f["considered"]  # the tone model hears every burst, at every offset
    assert f["offline_offsets"] == len(OFFSETS_MS) and f["heard_at_some_offsets"] == 0
    assert f["offset_spread"] == [0] * len(OFFSETS_MS)  # all-or-nothing scores: no miss is forgiven

    faults = {x["kind"]: x for x in res["faults"]}
    assert set(faults) == {
        "stall",
        "hook_hang",
        "overrun",
        "full_disk",
        "device_loss",
        "wedged_device",
        "sigterm_mid_save",
    }
    assert all(
        x["start_s"] is not None and x["end_s"] is not None
        for x in res["faults"]
        if not x["note"].startswith("skipped")
    )
    assert "dropped" in faults["stall"]["note"] and "dropped" in faults["overrun"]["note"]
    assert "its clip still pending" in faults["sigterm_mid_save"]["note"]
    if not faults["full_disk"]["note"].startswith("skipped"):  # root could mount the tmpfs to fill
        assert faults["full_disk"]["ok"] is True and "refused with a warning" in faults["full_disk"]["note"]
        assert " 0 save(s) refused" not in faults["full_disk"]["note"]
    else:
        assert os.geteuid() != 0 or "mount failed" in faults["full_disk"]["note"]
    saves = res["saves"]
    assert saves["pending_saved"] is True and saves["tmp_left"] == [] and saves["wav_without_json"] == []
    assert saves["wav"] >= 2 and not any(saves["hook_leftovers"].values())

    # the wedged sound server hangs the loop (inside the audio library), the emulated watchdog aborts it,
    # and the new process listens once the server thaws: one restart, by the watchdog, no crash
    assert "the watchdog aborted it" in faults["wedged_device"]["note"]
    d = res["daemon"]
    assert d["restarts"] == 1 and d["watchdog_aborts"] == 1 and d["crashes"] == 0
    assert [e["cause"] for e in d["exits"]] == ["watchdog", "stop"] and d["exits"][-1]["code"] == 0
    assert "stopped on signal 15" in d["stop_line"]
    assert res["notify"]["ready"] == 2 and res["notify"]["stopping"] == 1 and res["notify"]["pings"] > 20
    assert res["rss"]["start_mib"] > res["anon"]["start_mib"] > 10 and res["cpu"]["cpu_s_per_audio_h"] > 0
    assert res["status"]["dropped_s"] > 0  # the stall's and the overrun's backlog was dropped, not heard late
    assert str(out) not in Path("/proc/mounts").read_text()  # the tmpfs is unmounted again

    # what a failed soak prints on stderr: the failed criterion's detail, then the timeline to read it by
    late = {**res, "late": [{"start_s": 30.0, "end_s": 30.5, "latency_s": 3.4}], "report": str(out / "soak-report.md")}
    lines = failure_details(late, [{"name": "no late detection", "ok": False, "detail": "1 late"}])
    assert lines[0] == "no late detection: 1 late" and lines[1].startswith("late: [{'start_s': 30.0")
    assert any(ln.startswith("faults: stall ") for ln in lines)
    assert any(ln.startswith("keywords (s): ") and ln.count("-") == len(res["keywords_s"]) for ln in lines)
    assert any(ln == "live detections at (s): " + ", ".join(map(str, res["live_at_s"])) for ln in lines)
    # ... and the daemon's own log around it (what it did then: a CI log keeps nothing else of the run)
    around = lines[lines.index("daemon log around them:") + 1 :]
    assert around and all(29.9 <= float(ln.split()[0]) <= 34.4 for ln in around)
    assert len(res["live_at_s"]) == f["live_detections"]


def test_a_run_too_short_for_the_faults_is_one_clear_error(tone_model, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--model", str(tone_model), "--minutes", "0.2", "--out", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("soak: error: 0.20 min of audio is too short")
    assert "Traceback" not in r.stderr


def test_fault_plan_rounds_and_the_final_sigterm():
    s = Settings(minutes=60)
    faults = plan_faults(3600, s, 0.48)
    kinds = [f.kind for f in faults]
    assert kinds.count("stall") == kinds.count("device_loss") == kinds.count("overrun") == 5  # every 10 min
    assert kinds.count("wedged_device") == 1  # the first round only: its restart starts a new memory record
    assert kinds[-1] == "sigterm_mid_save" and faults[-1].at_s == 3600 - 2 * s.every_s
    assert all(a.at_s <= b.at_s for a, b in zip(faults, faults[1:]))
    assert {f.kind for f in faults if f.outage} == {"stall", "overrun", "device_loss", "wedged_device"}
    assert "wedged_device" not in [f.kind for f in plan_faults(3600, Settings(wedge_s=0), 0.48)]
    with pytest.raises(SoakError, match="too short"):
        plan_faults(60, s, 0.48)


def test_matching_on_time_late_and_unexpected():
    events = [Event(1.0, 1.4), Event(6.0, 6.4), Event(11.0, 11.4)]
    matched, late, unexpected = match(events, [1.7, 2.0, 9.9, 11.5, 0.5], tolerance_s=3.0)
    assert matched == {0: pytest.approx(0.3), 2: pytest.approx(0.1)}
    assert late == [(1, pytest.approx(3.5))]  # 3.5 s after its keyword: stale audio heard late
    assert unexpected == [0.5, 2.0]  # before any keyword; a second detection of the first one


def test_a_second_detection_long_after_a_keyword_that_was_heard_is_unexpected_not_late():
    """Soak of a real model (2026-12-08): the wildfire takes' surrounding speech fired the model
    5-8 s after 16 keywords it had already heard, in the offline reference as in the live run; the
    matcher called them late and failed a daemon that was never behind."""
    events = [Event(1.0, 1.4), Event(20.0, 20.4)]
    matched, late, unexpected = match(events, [1.9, 7.0, 13.0, 26.0, 27.0], tolerance_s=3.0)
    assert matched == {0: pytest.approx(0.5)}
    assert late == [(1, pytest.approx(5.6))]  # the second keyword's first detection is late
    assert unexpected == [7.0, 13.0, 27.0]  # after the first was heard; after the late one


def test_lateness_by_the_daemons_own_clock_has_a_baseline_per_process_and_session():
    def det(at, time_s, pid=1):
        return Detection(at=at, time_s=time_s, score=0.9, pid=pid)

    # session 1 (from 0 s) on time; session 2 (from 20 s) placed 1.4 s off by its first audio; a new
    # process (pid 2) with its own stream time; one detection stepped from 2.5 s old audio
    dets = [det(5.0, 4.8), det(10.0, 9.8), det(25.0, 26.2), det(30.0, 31.2), det(40.0, 1.0, pid=2)]
    dets.append(det(45.0, 3.5, pid=2))
    own = daemon_lateness(dets, [0.0, 20.0, 39.0])
    assert own == pytest.approx([0.0, 0.0, 0.0, 0.0, 0.0, 2.5])
    assert max(daemon_lateness(dets[:4])) == pytest.approx(1.4)  # one baseline for both sessions


def test_a_keyword_is_audible_only_when_the_reference_hears_it_at_every_frame_offset():
    events = [Event(10.0, 11.0), Event(20.0, 21.0), Event(30.0, 31.0)]
    runs = [[11.3, 21.2, 45.0], [11.4, 31.2], [11.2, 21.1, 31.1]]  # one run per offset, stream time
    heard = heard_offline(events, runs, tolerance_s=2.0)
    assert heard == [[True, True, True], [True, False, True], [False, True, True]]
    assert [all(h) for h in heard] == [True, False, False]


def test_the_spread_is_what_one_offset_misses_of_what_all_the_others_hear():
    heard = [
        [True, True, True],  # everyone
        [True, False, True],  # the second offset alone misses it
        [False, False, True],  # two miss it: nobody's spread
        [True, True, False],  # the third alone
        [True, False, True],  # the second alone (outside the keys below)
    ]
    assert offset_spread(heard, [0, 1, 2, 3]) == [0, 1, 1]
    assert offset_spread(heard, [0, 1, 2, 3, 4]) == [0, 2, 1]
    assert offset_spread([[True], [False]], [0, 1]) == [0]  # one run: no spread to forgive a miss with


def test_the_offset_reference_hears_the_same_samples_later(tmp_path):
    import wave

    import numpy as np

    x = np.random.default_rng(0).integers(-3000, 3000, 16000 * 3, dtype=np.int16)
    src = tmp_path / "a.wav"
    with wave.open(str(src), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(x.tobytes())
    with wave.open(str(_delayed(src, 20, tmp_path / "b.wav"))) as w:
        assert (w.getframerate(), w.getnchannels(), w.getnframes()) == (16000, 1, len(x) + 320)
        y = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    assert not y[:320].any() and np.array_equal(y[320:], x)


def test_keyword_audio_for_a_real_model_is_repeated_with_its_spans(tmp_path):
    """A real model's keywords: a WAV with its spans (``make bench``'s ``spans`` or a label file's
    ``keyword_spans``) repeated to the soak's length; only whole keywords count as events."""
    import wave

    import numpy as np

    from bench.soakaudio import AudioError, write_keyword_stream
    from device.wavio import write_wav

    src = tmp_path / "pos.wav"
    write_wav(src, np.full(16000 * 4, 0.1, np.float32), 16000)  # 4 s
    src.with_suffix(".json").write_text(json.dumps({"spans": [[1.0, 1.5], [3.0, 3.8]]}))
    events = write_keyword_stream(tmp_path / "soak.wav", src, 11.5)
    assert [(e.start_s, e.end_s) for e in events] == [
        (1.0, 1.5),
        (3.0, 3.8),
        (5.0, 5.5),
        (7.0, 7.8),
        (9.0, 9.5),
    ]  # 11.0-11.8 is cut off
    with wave.open(str(tmp_path / "soak.wav")) as w:
        assert w.getnframes() == 16000 * 11.5 and w.getnchannels() == 1
    src.with_suffix(".json").write_text("{}")
    with pytest.raises(AudioError, match="no usable keyword_spans"):
        write_keyword_stream(tmp_path / "soak2.wav", src, 10)


def test_a_daemon_that_exits_by_itself_is_a_crash_and_is_restarted(tmp_path):
    """Like Restart=on-failure: every exit the bench did not ask for is counted and followed by a new start."""
    import time

    from bench.soakdaemon import DaemonRun, daemon_env

    run = DaemonRun(["listen", "--model", str(tmp_path / "missing.onnx")], daemon_env({}), tmp_path / "d.log")
    run.start()
    try:
        deadline = time.monotonic() + 60
        while len(run.exits) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        run.stop()
        run.close()
    assert len(run.exits) >= 2 and len(run.starts) >= 2
    assert all(not e.asked and e.code == 3 for e in run.exits[:2])  # exit 3: a model it cannot run
    assert "missing.onnx" in run.exits[0].last_line


def test_a_rig_that_fell_behind_on_every_keyword_is_not_judged():
    # every audible keyword inside the rig's own gaps: nothing said about the daemon, and why
    ok, detail, unjudged = hearing_verdict(expected=0, missed=0, spread=[0, 1], rig_lost=5)
    assert ok is None and unjudged == detail and "rig fell behind" in detail and "5 audible" in detail
    # some keywords outside the gaps: judged as usual, on those
    assert hearing_verdict(expected=4, missed=1, spread=[0, 1], rig_lost=5)[::2] == (True, "")
    assert hearing_verdict(expected=4, missed=2, spread=[0, 1], rig_lost=0)[0] is False
    # nothing audible and no rig gap: a soak that heard nothing fails
    assert hearing_verdict(expected=0, missed=0, spread=[], rig_lost=0)[0] is False
