"""[data] speech_dirs: folders of real negative audio of any length, imported as utterance-sized
pieces that tile each long file, the same pieces every time; and carrier phrases before the keyword."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from device.params import AudioParams
from train import negatives
from train.dataconfig import DataConfig
from train.sources import RenderContext, plan_recordings, plan_tts, render
from train.tts import Voice

RATE = 16000


def _noise_file(path, seconds: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (rng.standard_normal(int(seconds * 22050)) * 0.1).astype(np.float32), 22050)


def test_long_files_become_pieces_that_tile_them_and_short_ones_stay_whole(tmp_path):
    folder = tmp_path / "podcasts"
    _noise_file(folder / "long.wav", 20.0, 1)
    _noise_file(folder / "sub" / "short.flac", 3.0, 2)
    cfg = DataConfig(recordings_dir=str(tmp_path / "none"), speech_dirs=(str(folder),))
    plan = plan_recordings(cfg, "computer", AudioParams())
    again = plan_recordings(cfg, "computer", AudioParams())
    assert [j.key for j in plan.jobs] == [j.key for j in again.jobs]  # the same pieces every run
    assert all(j.kind == "speech" and j.speaker == f"folder:{folder}" for j in plan.jobs)
    pieces = sorted(j.span_s for j in plan.jobs if j.origin.endswith("long.wav"))
    assert pieces[0][0] == 0.0 and len(pieces) >= 20 / cfg.speech_piece_max_s
    for (a, b), (c, _) in zip(pieces, pieces[1:]):
        assert c == b and cfg.speech_piece_min_s - 1e-6 <= b - a <= cfg.speech_piece_max_s + 1e-6
    assert 20.0 - pieces[-1][1] < cfg.speech_piece_min_s  # nothing usable left over
    assert [j.span_s for j in plan.jobs if j.origin.endswith("short.flac")] == [None]
    assert {j.split for j in plan.jobs} <= {"train", "val", "test"}

    ctx = RenderContext(AudioParams(), str(tmp_path / "sources"), 8.0, 9.8)
    stats = render(plan.jobs, ctx, workers=1)
    assert stats["rendered"] == len(plan.jobs) and not stats["failed"]
    lengths = [sf.info(str(tmp_path / "sources" / j.relpath)).duration for j in plan.jobs if j.span_s]
    assert all(cfg.speech_piece_min_s - 0.01 <= x <= cfg.speech_piece_max_s + 0.01 for x in lengths)


def test_a_share_of_keyword_renders_follows_a_carrier_phrase():
    voices = [Voice("espeak", f"en-us+m{i}", f"espeak:en-us+m{i}") for i in range(1, 5)]
    split = {v.speaker: "train" for v in voices}
    texts = {"keyword": ["computer"], "carrier": negatives.carrier_phrases()}
    plain = plan_tts(DataConfig(keyword_renders=400), AudioParams(), voices, split, texts)
    mixed = plan_tts(DataConfig(keyword_renders=400, keyword_context_fraction=0.3), AudioParams(), voices, split, texts)
    kw = [j.text for j in plain if j.kind == "keyword" and j.split == "train"]
    assert all(t.rstrip(".!?,") == "computer" for t in kw)
    with_carrier = [
        j.text for j in mixed if j.kind == "keyword" and j.split == "train" if j.text.rstrip(".!?,") != "computer"
    ]
    assert 0.2 < len(with_carrier) / 400 < 0.4
    assert all(t.rstrip(".!?,").endswith(" computer") for t in with_carrier)  # the keyword ends it


def test_keyword_engines_say_the_keyword_and_the_others_only_negatives():
    voices = [Voice("espeak", f"en-us+m{i}", f"espeak:en-us+m{i}") for i in range(1, 3)]
    voices += [Voice("flite", name, f"flite:{name}") for name in ("slt", "rms")]
    split = {v.speaker: "train" for v in voices}
    texts = {"keyword": ["computer"], "speech": ["it is raining again", "the bus was late"]}
    cfg = DataConfig(
        engines=("espeak", "flite"), engine_weights=(0.5, 0.5), keyword_engines=("espeak",), speech_renders=200
    )
    jobs = [j for j in plan_tts(cfg, AudioParams(), voices, split, texts) if j.split == "train"]
    assert {j.engine for j in jobs if j.kind == "keyword"} == {"espeak"}
    assert {j.engine for j in jobs if j.kind == "speech"} == {"espeak", "flite"}
    both = [
        j
        for j in plan_tts(
            DataConfig(engines=("espeak", "flite"), engine_weights=(0.5, 0.5)), AudioParams(), voices, split, texts
        )
    ]
    assert {j.engine for j in both if j.kind == "keyword"} == {"espeak", "flite"}  # empty: every engine
    with pytest.raises(ValueError, match="keyword_engines must be some of engines"):
        DataConfig(engines=("espeak",), engine_weights=(1.0,), keyword_engines=("flite",))
