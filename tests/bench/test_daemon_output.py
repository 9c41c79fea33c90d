"""Reading the daemon's JSON lines, and the two daemon options the benchmark added
(``--frame-scores``, ``--infer-every-s``), against the real ``wakeword listen``."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from bench import daemon


def test_parse_lines_scripted():
    text = """
{"time_s": 0.5, "score": 0.1}
{"start_s": 0.0, "frame_s": 0.02, "probs": [0.1, 0.05]}
{"time_s": 1.0, "score": 0.9}
{"start_s": 0.04, "frame_s": 0.02, "probs": [0.9, 0.2]}
{"time_s": 0.06, "score": 0.9, "keyword": "computer"}
"""
    out = daemon.parse_lines(text.splitlines())
    np.testing.assert_allclose(out.probs, [0.1, 0.05, 0.9, 0.2])
    assert out.frame_s == 0.02
    assert out.step_ends_s == [0.5, 1.0] and out.step_max == [0.1, 0.9]
    assert out.detections == [(0.06, 0.9)]
    assert out.reported_at_s == [1.0]  # the detection was printed after the step ending at 1.0 s


@pytest.mark.parametrize("line", ["not json", '{"unexpected": 1}'])
def test_parse_lines_rejects_garbage(line):
    with pytest.raises(daemon.DaemonError, match="line 2"):
        daemon.parse_lines(['{"time_s": 0.5, "score": 0.1}', line])


def test_frame_scores_are_the_models_own_probabilities(tone_model, tone_tests, tmp_path):
    """The daemon's printed frame scores equal the model run chunk by chunk (export.scoring),
    whatever the step size; the step lines are their maxima; steps follow --infer-every-s."""
    from device.engine import Engine
    from export.scoring import stream_probs
    from train.audio_io import read_audio

    wav = next(t for t in tone_tests if t.spec.positive and t.spec.condition == "clean")
    stepper = Engine.load(tone_model)
    params = stepper.meta.params
    want = stream_probs(stepper, read_audio(wav.wav, params), params.chunk_samples)
    for hop in (None, 0.08):
        out, usage = daemon.run(
            daemon.listen_argv(tone_model, wav.wav, frame_scores=True, scores=True, infer_every_s=hop),
            tmp_path / "err.log",
        )
        n = min(len(want), len(out.probs))
        assert n >= len(want) - 1
        np.testing.assert_allclose(out.probs[:n], want[:n], atol=1e-5)
        step = hop or params.infer_every_s
        np.testing.assert_allclose(np.diff(out.step_ends_s[:-1]), step, atol=1e-6)
        per_step = round(step / out.frame_s)
        maxima = [out.probs[i : i + per_step].max() for i in range(0, len(out.probs), per_step)]
        np.testing.assert_allclose(out.step_max, maxima, atol=1e-5)
        assert len(out.detections) == len(wav.spans)
        assert usage.cpu_s > 0 and usage.max_rss_mb > 10


def test_step_that_is_not_whole_frames_is_one_line_exit_2(tone_model, tone_tests):
    wav = tone_tests[0].wav
    proc = subprocess.run(daemon.listen_argv(tone_model, wav, infer_every_s=0.05), capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("wakeword: error: [capture] infer_every_s")
    assert "Traceback" not in proc.stderr


def test_failing_daemon_is_a_bench_error(tone_tests, tmp_path):
    with pytest.raises(daemon.DaemonError, match="exited with 3"):
        daemon.run(daemon.listen_argv(tmp_path / "missing.onnx", tone_tests[0].wav), tmp_path / "err.log")


def test_run_cpu_is_read_from_the_daemons_exit_line(tmp_path):
    from bench.daemon import run_cpu_s

    log = tmp_path / "d.log"
    log.write_text(
        "model m.onnx: keyword 'tone'\n"
        "stopped on signal 15: 12.0 s of audio, 0 detection(s), 25 step(s), 0.0 s dropped, 0.0123 CPU s\n"
    )
    assert run_cpu_s(log) == pytest.approx(0.0123)
    log.write_text("listening ...\nTraceback (most recent call last):\n")
    assert run_cpu_s(log) is None
