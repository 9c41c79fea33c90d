"""One command line, one config loader and one set of exit statuses for every pipeline stage
(train/stagecli.py, train/config.py)."""

from __future__ import annotations

import importlib

import pytest

from train import config, stagecli

STAGES = {
    "dataset": "train.dataset",
    "train": "train.train",
    "evaluate": "train.evaluate",
    "finetune": "train.finetune",
    "export": "export.__main__",
    "bench": "bench.__main__",
    "fieldloop": "bench.fieldloop",
    "combine": "train.combine",
}


@pytest.mark.parametrize("name", STAGES)
def test_every_stage_takes_the_same_options(name, capsys):
    with pytest.raises(SystemExit) as exc:
        importlib.import_module(STAGES[name]).main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for opt in ("--keyword", "--build", "--quick", "--config", "--set SECTION.KEY=VALUE"):
        assert opt in out, (name, opt)


@pytest.mark.parametrize("name", [n for n in STAGES if n not in ("fieldloop", "combine")])  # they need inputs first
@pytest.mark.parametrize(
    "bad, says",
    [
        ("nosuch.key=1", "unknown section [nosuch]"),
        ("data.speech_renders=-1", "speech_renders must be >= 0"),
        ("train.lr=fast", "[train] lr must be a number"),
        ("train.lr=1e999", "[train] lr must be a finite number"),  # inf: the daemon's config loader, one for all
        ("bench.latency_hops_s=[0.48,'x']", "[bench] latency_hops_s must be a number"),
    ],
)
def test_a_bad_config_is_one_line_and_exit_2_before_any_work(name, bad, says, tmp_path, capsys):
    build = tmp_path / "b"
    code = importlib.import_module(STAGES[name]).main(["--keyword", "k", "--build", str(build), "--set", bad])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == stagecli.EXIT_USAGE and len(err) == 1 and err[0].startswith(f"{name}: error: "), err
    assert says in err[0]
    assert not build.exists()


def test_unknown_section_suggests_the_near_one():
    with pytest.raises(config.ConfigError, match=r"unknown section \[trian\] \(did you mean \[train\]\?\)"):
        config.load(overrides=["trian.lr=0.1"])


def test_stage_command_from_the_makefile_environment():
    cmd = stagecli.command(
        "train.train",
        ["--x"],
        {"KEYWORD": "hey 'you'", "SET": "a.b=1 c.d=2", "QUICK": "1", "CONFIG": "x.toml", "NPROC": "1"},
    )
    assert cmd[1:] == [
        "-m",
        "train.train",
        "--keyword",
        "hey 'you'",
        "--build",
        "build/hey 'you'",
        "--quick",
        "--config",
        "x.toml",
        "--set",
        "a.b=1",
        "--set",
        "c.d=2",
        "--x",
    ]
    two = stagecli.command("train.train", [], {"NPROC": "2", "BUILD": "b"})
    assert two[0].endswith("torchrun") and "--nproc-per-node=2" in two and two[-2:] == ["--build", "b"]
    for bad in ("0", "2;id", "-1", "x"):
        with pytest.raises(ValueError, match="NPROC must be a whole number"):
            stagecli.command("train.train", [], {"NPROC": bad})


def test_a_full_disk_is_one_line_and_exit_1(capsys):
    def body():
        with open("/dev/full", "wb") as f:  # the kernel's always-full device: a real ENOSPC
            f.write(b"\0" * 65536)
            f.flush()

    code = stagecli.run("train", body, interrupted="last.pt holds the last saved step")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == stagecli.EXIT_FAILED and len(err) == 1, err
    assert err[0].startswith("train: error: cannot write") and "No space left on device" in err[0]
    assert "last.pt holds the last saved step once there is room" in err[0]


def test_other_os_errors_are_not_taken_for_a_full_disk():
    def body():
        open("/nonexistent-dir/x")  # a bug or a missing input: its own traceback, not "cannot write"

    with pytest.raises(FileNotFoundError):
        stagecli.run("train", body)
