"""A tiny ``make bench`` on the tone model: daemon runs, latency, LED, cost, report."""

from __future__ import annotations

import json

import pytest

from bench import report
from bench.config import BenchConfig
from bench.pipeline import BenchError, find_models, run
from train import config


@pytest.fixture(scope="module")
def result(tone_model, tone_tests, tmp_path_factory):
    build = tmp_path_factory.mktemp("build")
    bc = BenchConfig(
        latency_hops_s=(0.48, 0.08), led_keywords=2, cost_audio_s=20.0, step_cost_steps=5, sweep_thresholds=49
    )
    res = run("tone", build, config.load(), bc, models={"ours": tone_model}, tests=tone_tests)
    res["versions"] = {"python": "test"}
    return res, report.write(res, build / "bench", "python -m bench --keyword tone (test)")


def test_accuracy_through_the_daemon(result):
    res, _ = result
    ours = res["engines"]["ours"]
    assert ours["rule_mismatches"] == []  # the daemon's detections = the rule on its frame scores
    clean = next(s for s in ours["sets"] if s["condition"] == "clean")
    assert clean["keywords"] == 6 and clean["negative_hours"] > 0
    assert all(p["miss_rate"] == 0.0 for p in clean["points"])  # the tone model finds every clean tone
    assert all(p["miss_low"] <= p["miss_rate"] <= p["miss_high"] for s in ours["sets"] for p in s["points"])
    cal = ours["calibrated"]
    assert cal["tone-clean-pos"]["hits"] == 6 and cal["tone-clean-neg"]["false_accepts"] == 0


def test_latency_led_and_cost(result):
    res, _ = result
    by_hop = {r["hop_s"]: r for r in res["latency"]}
    assert by_hop[0.48]["event"]["n"] == 6 and by_hop[0.08]["event"]["n"] == 6
    # a detection is reported at the end of its step: never before the frame that fired
    assert by_hop[0.48]["event"]["median_s"] >= by_hop[0.48]["frame"]["median_s"]
    assert by_hop[0.08]["event"]["median_s"] < by_hop[0.48]["event"]["median_s"]
    assert max(by_hop[0.48]["event_values_s"]) < 0.48 + max(by_hop[0.48]["frame"]["p95_s"], 0.0) + 1e-6
    led = {r["hop_s"]: r for r in res["led"]}
    assert led[0.48]["led"]["n"] == 2 and 0.0 < led[0.48]["led"]["median_s"] < 1.0
    cost = res["cost"]
    assert [c["hop_s"] for c in cost["per_hop"]] == [0.48, 0.08]
    # the daemon's own count from first step to last: start-up is outside it, nothing is subtracted
    for c in cost["per_hop"]:
        assert 0 < c["run_cpu_s"] <= c["cpu_s"] and c["startup_cpu_s"] > 0 and c["max_rss_mb"] > 10
        assert c["cpu_s_per_audio_hour"] == pytest.approx(c["run_cpu_s"] / c["audio_s"] * 3600)
    assert cost["step"]["ours"]["model_bytes"] > 0
    # 1, 2 and 4 keywords in one daemon: the 1-keyword figure is the default step's own run
    assert [r["keywords"] for r in cost["per_keywords"]] == [1, 2, 4]
    assert cost["per_keywords"][0]["run_cpu_s"] == next(c for c in cost["per_hop"] if c["hop_s"] == 0.48)["run_cpu_s"]
    assert all(r["max_rss_mb"] > 10 and r["run_cpu_s"] > 0 for r in cost["per_keywords"])


def test_report_files(result):
    res, md_path = result
    md = md_path.read_text()
    assert "## Headline" in md and "| ours |" in md and "0.0 %" in md
    assert "![DET curves](det.png)" in md and (md_path.parent / "det.png").stat().st_size > 1000
    assert "Several keywords in one daemon" in md and "\n| 4 | " in md
    assert (md_path.parent / "latency.png").is_file()
    data = json.loads((md_path.parent / "report.json").read_text())
    assert data["engines"]["ours"]["sets"][0]["curve"]["thresholds"]


def test_missing_model_is_one_line(tmp_path):
    with pytest.raises(BenchError, match="run `make train export`"):
        find_models(tmp_path, BenchConfig())


def test_bench_sections_of_the_shipped_configs():
    full = config.section(config.load(), "bench", BenchConfig)
    quick = config.section(config.load(quick=True), "bench", BenchConfig)
    assert full.speech_hours >= 4 and quick.speech_hours < full.speech_hours
    assert 0.48 in full.latency_hops_s and 0.48 in quick.latency_hops_s  # the model's own step
    with pytest.raises(config.ConfigError, match="bench"):
        config.section(config.load(overrides=["bench.latency_hops_s=-1"]), "bench", BenchConfig)
