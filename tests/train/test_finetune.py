"""``make finetune`` (train.finetune): a new build that borrows the base's renders and dataset by
hard link, never writes into the base, and runs the ordinary stages from the base's best.pt."""

from __future__ import annotations

import os

import pytest

from tests.toymodels import write_tone_checkpoint
from train import finetune


def _base(tmp_path):
    base = tmp_path / "computer"
    for part in ("sources", "rooms", "dataset", "streams"):
        (base / part).mkdir(parents=True)
        (base / part / "file.bin").write_bytes(part.encode())
    write_tone_checkpoint(base / "train" / "best.pt", steps=3)  # one head: a model from before two were the default
    return base


def test_the_stages_run_from_the_base_checkpoint_in_a_build_of_their_own(tmp_path, monkeypatch):
    base = _base(tmp_path)
    ran = []
    monkeypatch.setattr(finetune, "run_stage", lambda module, opts: ran.append((module, opts)))
    out = tmp_path / "computer-ft"
    model = finetune.finetune("computer", base, out, configs=["mine.toml"], overrides=["train.max_steps=50"])

    assert model == out / "model.onnx"
    assert [m for m, _ in ran] == ["train.dataset", "train.train", "export"]
    opts = ran[1][1]
    assert opts[:4] == ["--keyword", "computer", "--build", str(out)]
    configs = [opts[i + 1] for i, o in enumerate(opts) if o == "--config"]
    assert configs == [str(finetune.FINETUNE_FILE), "mine.toml"]  # the user's layers come last and win
    sets = [opts[i + 1] for i, o in enumerate(opts) if o == "--set"]
    assert sets[0] == f"train.init_from={(base / 'train' / 'best.pt').resolve()}"
    assert "model.heads=1" in sets and "model.hidden=16" in sets  # the base's shape, whatever the defaults say
    assert sets[-1] == "train.max_steps=50"  # the user's own settings come last and win
    assert all(o == opts for _, o in ran)  # every stage sees the same configuration

    for part in ("sources", "rooms", "dataset", "streams"):  # borrowed, not copied
        assert os.stat(out / part / "file.bin").st_ino == os.stat(base / part / "file.bin").st_ino
    assert not (out / "train").exists()


def test_the_finetune_toml_is_a_short_gentle_schedule():
    from train import config
    from train.train import TrainConfig

    tc = config.section(config.load([str(finetune.FINETUNE_FILE)]), "train", TrainConfig)
    fresh = config.section(config.load(), "train", TrainConfig)
    assert tc.max_minutes == 0 and 0 < tc.max_steps < fresh.max_steps
    assert tc.lr < fresh.lr and tc.warmup_steps < fresh.warmup_steps
    from train.dataconfig import DataConfig

    data = config.section(config.load([str(finetune.FINETUNE_FILE)]), "data", DataConfig)
    assert data.recording_share > config.section(config.load(), "data", DataConfig).recording_share


def test_no_base_checkpoint_or_the_base_itself_is_refused_in_one_line(tmp_path, capsys):
    assert finetune.main(["--keyword", "computer", "--build", str(tmp_path / "nothing")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train the base model first" in err[0], err
    base = _base(tmp_path)
    with pytest.raises(finetune.StageFailed, match="its own build folder"):
        finetune.finetune("computer", base, base)
    assert not (tmp_path / "nothing-ft").exists()
    (base / "train" / "best.pt").write_bytes(b"weights")  # damaged
    assert finetune.main(["--keyword", "computer", "--build", str(base)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "best.pt" in err[0], err
    # what make loop calls (two at once): a StageFailed, one line, never a traceback
    with pytest.raises(finetune.StageFailed, match="best.pt is not a readable checkpoint"):
        finetune.finetune("computer", base, tmp_path / "ft")
