"""``make pair`` (train.pair): a second run of the base with the next seed in a build of its own
(the base's data borrowed), the two combined, and the combination exported."""

from __future__ import annotations

import os

from tests.toymodels import write_tone_checkpoint
from train import pair


def test_a_second_run_then_the_pair_combined_and_exported(tmp_path, monkeypatch):
    base = tmp_path / "tone"
    for part in ("sources", "rooms", "dataset", "streams"):
        (base / part).mkdir(parents=True)
        (base / part / "file.bin").write_bytes(part.encode())
    write_tone_checkpoint(base / "train" / "best.pt", seed=0, steps=5)
    ran = []

    def fake_stage(module, opts):  # the second run "trains": a real checkpoint of the next seed
        ran.append((module, opts))
        if module == "train.train":
            write_tone_checkpoint(tmp_path / "tone-s2" / "train" / "best.pt", seed=1, steps=5)

    monkeypatch.setattr(pair, "run_stage", fake_stage)
    model = pair.pair("tone", base, overrides=["train.max_steps=50"])

    assert model == tmp_path / "tone-pair" / "model.onnx"
    assert [m for m, _ in ran] == ["train.dataset", "train.train", "export"]
    second = ran[1][1]
    assert second[:4] == ["--keyword", "tone", "--build", str(tmp_path / "tone-s2")]
    assert second[-4:] == ["--set", "train.max_steps=50", "--set", "train.seed=1"]  # the base said seed 0
    assert ran[2][1][:4] == ["--keyword", "tone", "--build", str(tmp_path / "tone-pair")]
    assert "train.seed=1" not in ran[2][1]
    for part in ("sources", "rooms", "dataset", "streams"):  # borrowed, not rebuilt
        assert os.stat(tmp_path / "tone-s2" / part / "file.bin").st_ino == os.stat(base / part / "file.bin").st_ino
    import torch

    state = torch.load(tmp_path / "tone-pair" / "train" / "best.pt", weights_only=False)
    assert state["model_config"]["heads"] == 2 and len(state["combined_from"]) == 2


def test_an_untrained_base_is_one_line(tmp_path, capsys):
    assert pair.main(["--keyword", "tone", "--build", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("pair: error: no ") and "make train" in err and "\n" not in err
