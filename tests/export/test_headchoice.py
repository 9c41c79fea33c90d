"""`make export` ships the subset of a model's heads that real takes show clearly better, and only then.

Real parts throughout: tone checkpoints trained here, the real front end, the export command, the
device's engine on the written file. The "bad" head is the trained tone head with its output
negated, so it answers 1 - p: averaged with the good head the model says 0.5 everywhere and
misses every take, while the good head alone hears them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.tonemodel import TONE_S, tone_clip
from export.calib_streams import folder_source
from export.config import ExportConfig
from export.source import build_detector, load_checkpoint
from tests.export.test_cli import make_build, quick_export, run_cli
from tests.toymodels import write_tone_checkpoint


def write_takes(folder: Path, n: int, seed: int = 50) -> Path:
    """``n`` takes of the "keyword" (one tone each, 3 s), each with its label sidecar."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    for k in range(n):
        start = 0.8 + 0.1 * (k % 5)
        path = folder / f"take{k:02d}.wav"
        sf.write(path, tone_clip(3.0, [start], 16000, seed=seed + k), 16000)
        path.with_name(path.name + ".label.json").write_text(
            json.dumps({"version": 1, "kind": "keyword", "keyword_spans": [[start, start + TONE_S]]})
        )
    return folder


def two_head_build(tmp_path: Path, tone_checkpoint: Path, negate_second: bool) -> Path:
    """A build whose best.pt holds two tone heads: seeds 0 and 1, or seed 0 twice with the second
    negated (answering 1 - p where the first answers p)."""
    from train import checkpoint, combine

    one = make_build(tmp_path / "a", tone_checkpoint)
    second = tone_checkpoint if negate_second else write_tone_checkpoint(tmp_path / "seed1.pt", seed=1)
    two = make_build(tmp_path / "b", second)
    out = tmp_path / "build" / "tone"
    assert combine.main(["--keyword", "tone", "--build", str(out), "--from", str(one), "--from", str(two)]) == 0
    if negate_second:
        state = torch.load(out / "train" / "best.pt", weights_only=False)
        for name in ("members.1.out.weight", "members.1.out.bias"):
            state["model"][name] = -state["model"][name]
        checkpoint.save(out / "train" / "best.pt", {k: v for k, v in state.items() if k != "format"})
    return out


@pytest.fixture(scope="module")
def takes(tmp_path_factory) -> Path:
    return write_takes(tmp_path_factory.mktemp("takes"), 24)


def test_a_head_that_misses_the_real_takes_is_left_out_of_the_shipped_model(
    tmp_path, tone_checkpoint, calib_dir, takes
):
    from device.api import Detector

    build = two_head_build(tmp_path, tone_checkpoint, negate_second=True)
    proc = run_cli(build, *quick_export(calib_dir), "--set", f"export.keyword_dirs=['{takes}']")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((build / "export" / "report.json").read_text())
    hc = report["training"]["head_choice"]
    assert hc["kept"] == [0] and hc["heads"] == 2 and hc["takes"] == 24 and hc["origins"] == [str(takes)]
    rows = {tuple(c["heads"]): c for c in hc["candidates"]}
    assert set(rows) == {(0, 1), (0,), (1,)}
    assert rows[(0, 1)]["miss_rate"] == 1.0 and rows[(0,)]["miss_rate"] < 0.5  # 0.5 everywhere hears nothing
    assert hc["sign_test"]["better"] >= 12 and hc["sign_test"]["worse"] == 0
    assert report["training"]["model_config"]["heads"] == 1
    assert "## Heads" in (build / "export" / "report.md").read_text()
    det = Detector(build / "model.onnx")  # the shipped file is the good head alone, and hears the tone
    assert det.feed(tone_clip(6.0, [1.5, 4.0], seed=9))
    good = build_detector(load_checkpoint(tone_checkpoint))  # ... the very weights of seed 0's run
    from export.scoring import torch_probs

    audio = tone_clip(6.0, [1.5, 4.0], seed=9)
    np.testing.assert_allclose(det.scores, torch_probs(good, audio)[: len(det.scores)], atol=1e-4)


def test_heads_that_do_equally_well_all_stay_and_the_report_says_why(tmp_path, tone_checkpoint, calib_dir, takes):
    from export import headchoice
    from train.streams import StreamConfig

    build = two_head_build(tmp_path, tone_checkpoint, negate_second=False)
    det = build_detector(load_checkpoint(build / "train" / "best.pt"))
    xc = ExportConfig(keyword_dirs=(str(takes),), min_negative_hours=0.01)
    found = headchoice.keyword_takes(xc, {}, "tone", build, det.params)
    assert len(found.clips) == 24 and found.origins == (str(takes),)
    seen_hours = []  # the basis (pooled or real alone) is chosen on the negatives' real lengths

    def basis(negatives):
        seen_hours.append(sum(s.duration_s for group in negatives.values() for s in group) / 3600)
        return ()

    choice = headchoice.choose(det, folder_source(calib_dir, det.params), found, xc, StreamConfig(), basis)
    assert choice.kept == (0, 1) and "no subset was clearly better" in choice.reason
    assert seen_hours[0] == pytest.approx(3 * 30.0 / 3600, rel=0.01)  # calib_dir: three 30 s negative streams
    assert [c["heads"] for c in choice.candidates] == [[0, 1], [0], [1]]
    # too few takes: nothing is scored, all heads stay, and the reason names the setting
    few = headchoice.Takes(found.clips[:5], found.origins)
    choice = headchoice.choose(det, folder_source(calib_dir, det.params), few, xc, StreamConfig(), lambda n: ())
    assert choice.kept == (0, 1) and not choice.candidates and "5 real takes" in choice.reason


def test_takes_are_read_from_every_place_a_user_keeps_them_and_bad_ones_are_skipped(tmp_path, monkeypatch):
    from device.params import AudioParams
    from export import headchoice
    from export.calib_streams import CalibrationDataError
    from train.dataconfig import DataConfig
    from train.sources import recording_split

    monkeypatch.chdir(tmp_path)
    params = AudioParams()
    mine = write_takes(tmp_path / "recordings" / "tone" / "positive", 60, seed=200)
    held = [p for p in sorted(mine.glob("*.wav")) if recording_split(p, DataConfig()) != "train"]
    assert held, "some of 60 files fall outside the train split"
    write_takes(tmp_path / "recordings" / "tone" / "check", 4, seed=400)  # `make record KIND=check`
    extra = write_takes(tmp_path / "extra", 3, seed=300)
    (extra / "broken.wav").write_bytes(b"RIFF not really a wav")
    two = extra / "two.wav"  # one file, two keywords: two takes, cut apart between them
    import soundfile as sf

    sf.write(two, tone_clip(6.0, [1.0, 4.0], 16000, seed=7), 16000)
    two.with_name("two.wav.label.json").write_text(
        json.dumps({"version": 1, "kind": "keyword", "keyword_spans": [[1.0, 1.4], [4.0, 4.4]]})
    )
    sf.write(extra / "late.wav", tone_clip(2.0, [1.5], 16000), 16000)  # a span drawn past the end: cut to it
    (extra / "late.wav.label.json").write_text(
        json.dumps({"version": 1, "kind": "keyword", "keyword_spans": [[1.5, 3]]})
    )
    sf.write(extra / "not.wav", tone_clip(2.0, [], 16000), 16000)  # relabelled by the user: not the keyword
    (extra / "not.wav.label.json").write_text(json.dumps({"version": 1, "kind": "negative", "keyword_spans": []}))
    xc = ExportConfig(keyword_dirs=(str(extra),))
    found = headchoice.keyword_takes(xc, {}, "tone", tmp_path / "build", params)
    assert len(found.clips) == 3 + 2 + 1 + 4 + len(held) and found.unreadable == 1
    cut = {c.name: c for c in found.clips}
    assert cut["two.wav#0"].span_s == pytest.approx((1.0, 1.4)) and len(cut["two.wav#0"].audio) == 2.7 * 16000
    assert cut["two.wav#1"].span_s == pytest.approx((4.0 - 2.7, 4.4 - 2.7))
    assert cut["late.wav#0"].span_s == pytest.approx((1.5, 2.0))
    assert found.origins[1:] == (
        str(Path("recordings") / "tone" / "check"),
        f"{Path('recordings') / 'tone' / 'positive'} (the files outside the train split)",
    )
    with pytest.raises(CalibrationDataError, match="keyword_dirs: .* holds no"):
        headchoice.keyword_takes(ExportConfig(keyword_dirs=(str(tmp_path / "none"),)), {}, "tone", tmp_path, params)


def test_cutting_heads_keeps_their_weights_and_bench_leaves_out_the_speakers_who_chose():
    import dataclasses
    from types import SimpleNamespace

    from bench.pipeline import heard_speakers
    from export import headchoice
    from train.model import ModelConfig, make_head

    @dataclasses.dataclass
    class Ckpt:  # the two fields of export.source.Checkpoint that cut() changes
        state_dict: dict
        model_config: dict

    cfg = ModelConfig(hidden=8, layers=1, heads=3)
    model = make_head(cfg)
    ckpt = Ckpt(model.state_dict(), cfg.to_dict())
    two = headchoice.cut(ckpt, [0, 2])
    back = make_head(ModelConfig.from_dict(two.model_config))
    back.load_state_dict(two.state_dict)
    assert torch.equal(back.heads[1].out.weight, model.heads[2].out.weight)
    one = headchoice.cut(ckpt, [1])
    alone = make_head(ModelConfig.from_dict(one.model_config))
    alone.load_state_dict(one.state_dict)
    assert torch.equal(alone.out.weight, model.heads[1].out.weight)
    assert headchoice.candidates(3) == [(0, 1, 2), (0,), (1,), (2,), (1, 2), (0, 2), (0, 1)]
    assert headchoice.sign_test_p(5, 0) == 1 / 32 and headchoice.sign_test_p(0, 0) == 1.0
    meta = SimpleNamespace(calibration={}, training={"head_choice": {"shared_speakers": ["s1", "s2"]}})
    assert heard_speakers(Path("/nonexistent"), meta) == ["s1", "s2"]


def test_bad_head_choice_settings_are_refused():
    for bad in (
        {"shared_keyword_share": 1.5},
        {"choice_min_takes": 0},
        {"choice_alpha": 0.0},
        {"choice_margin": -1},
        {"choice_draws": -1},
        {"choice_confidence": float("nan")},
    ):
        with pytest.raises(ValueError):
            ExportConfig(**bad)


def test_the_report_counts_takes_without_a_speaker_apart_from_named_speakers():
    from export.report import _head_lines

    hc = {
        "heads": 3,
        "kept": [2],
        "reason": "heads [2] missed fewer",
        "takes": 40,
        "origins": ["../shared/data"],
        "shared_speakers": ["krisgesling", "unknown:computer/picovoice/a.wav", "unknown:computer/picovoice/b.wav"],
    }
    text = "\n".join(_head_lines(hc))
    assert "Shipped: **heads [2] of 3**" in text
    # the choice as made (a tuple) reads the same as the choice read back from report.json
    assert "Shipped: **heads [2] of 3**" in "\n".join(_head_lines({**hc, "kept": (2,)}))
    assert "1 ../shared/data speaker and 2 ../shared/data files whose speaker is not known" in text


def _grid(fa_rows, heard_rows):
    from train.metrics import SweepOutcomes

    fa = np.array(fa_rows, int)
    return SweepOutcomes(fa, np.ones(len(fa)), np.array(heard_rows, bool))


def test_the_bootstrap_counts_a_win_only_when_the_subset_misses_fewer_on_the_draw():
    from export import headchoice

    rng = np.random.default_rng(0)
    quiet = [[0, 0, 0]] * 10  # ten 1 h negative streams that never fire
    half = [[k % 2 == 0] * 3 for k in range(40)]  # 20 takes x 2 copies, half heard at every threshold
    everything = [[True] * 3 for _ in range(40)]
    assert headchoice.bootstrap_wins(_grid(quiet, half), _grid(quiet, half), 0.5, 200, rng) == 0.0  # ties lose
    assert headchoice.bootstrap_wins(_grid(quiet, half), _grid(quiet, everything), 0.5, 200, rng) == 1.0


def test_a_gain_that_rests_on_one_negative_stream_is_not_shipped():
    """The subset hears every take at the lowest threshold, but only because one negative stream's
    ten false accepts just meet 1 FA/h over 10 h; whenever a resample draws that stream twice its
    threshold must rise to where it hears nothing. It wins about three draws in four: the margin
    and the sign test would ship it, the bootstrap does not."""
    from export import headchoice

    fragile = [[10, 0, 0]] + [[0, 0, 0]] * 9
    everyone = _grid([[0, 0, 0]] * 10, [[k % 2 == 0] * 3 for k in range(40)])
    subset = _grid(fragile, [[True, False, False] for _ in range(40)])
    won = headchoice.bootstrap_wins(everyone, subset, 1.0, 2000, np.random.default_rng(1))
    assert 0.65 < won < 0.8  # 1 - P(that stream drawn twice or more in 10) = 0.74

    base = headchoice.HeadChoice(2, (0, 1), "", 20)
    rows = [
        headchoice.Candidate((0, 1), 0.9, True, np.array([k % 2 == 0 for k in range(40)])),
        headchoice.Candidate((0,), 0.9, True, np.ones(40, bool)),
        headchoice.Candidate((1,), 0.9, True, np.zeros(40, bool)),
    ]
    xc = ExportConfig()
    shaky = headchoice.decide(base, rows, xc, lambda best: won)
    assert shaky.kept == (0, 1) and "resamples" in shaky.reason and shaky.bootstrap["won"] == won
    assert headchoice.decide(base, rows, xc, lambda best: 0.99).kept == (0,)
    assert headchoice.decide(base, rows, xc).kept == (0,)  # not asked: the margin and the sign test decide
