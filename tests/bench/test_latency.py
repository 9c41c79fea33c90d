"""Latency arithmetic on scripted detections and LED edges."""

from __future__ import annotations

import pytest

from bench import latency

SPANS = [(1.0, 1.5), (5.0, 5.6), (9.0, 9.5)]


def test_keyword_latencies_first_detection_in_each_window():
    # keyword 1: detected 0.3 s after its end, reported at the step ending 2.0 s;
    # keyword 2: two detections, the first counts; keyword 3: a detection too late (missed);
    # a stray detection at 3.0 s belongs to nobody
    dets = [1.8, 3.0, 5.9, 6.1, 11.0]
    reported = [2.0, 3.5, 6.0, 6.5, 11.5]
    frame, event = latency.keyword_latencies(SPANS, dets, reported, tolerance_s=1.0)
    assert frame == pytest.approx([0.3, 0.3])
    assert event == pytest.approx([0.5, 0.4])


def test_summary():
    s = latency.Summary.of([0.1, 0.2, 0.3, 0.4, 1.0])
    assert (s.n, s.median_s, s.mean_s) == (5, 0.3, pytest.approx(0.4))
    assert s.p95_s == pytest.approx(0.88)
    assert latency.Summary.of([]).n == 0


def test_led_latency_from_edge_log_and_stream_start(tmp_path):
    log = tmp_path / "edges.log"
    t0 = 1000.0
    # start-up write (level 0), on at 1.5+0.42, off, on at 5.6+0.35, off; keyword 3 never lit
    log.write_text(
        f"999.900000 17 0\n{t0 + 1.92:.6f} 17 1\n{t0 + 2.22:.6f} 17 0\n{t0 + 5.95:.6f} 17 1\n{t0 + 6.25:.6f} 17 0\n"
    )
    edges = latency.read_edges(log)
    assert edges == pytest.approx([t0 + 1.92, t0 + 5.95])
    assert latency.led_latencies(SPANS, edges, t0, window_s=2.0) == pytest.approx([0.42, 0.35])
    assert latency.read_edges(tmp_path / "missing.log") == []


def test_stream_start_is_read_from_the_daemon_log():
    text = "wakeword: INFO: model x\nwakeword: INFO: playing /a/b.wav at 1x: stream time 0 = monotonic 12345.678901 s\n"
    assert latency.read_t0(text) == pytest.approx(12345.678901)
    assert latency.read_t0("nothing here") is None
