"""Training as real processes: Ctrl-C (a real SIGINT) and a 2-process gloo run under torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.terminal import sigint_default
from tests.train.fakerun import TINY
from train import checkpoint

REPO = Path(__file__).resolve().parents[2]


def _args(build: Path, *extra: str) -> list[str]:
    return ["--keyword", "tone", "--build", str(build)] + [a for s in TINY + list(extra) for a in ("--set", s)]


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _start(build: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "tests.train.fakerun"] + _args(
        build, "train.max_steps=100000", "train.val_every_steps=100000"
    )
    return subprocess.Popen(cmd, cwd=REPO, env=_env(), stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)


def _wait_for(proc: subprocess.Popen, text: str, timeout_s: float = 120) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    proc.kill()
    raise AssertionError(f"never saw {text!r}: {''.join(lines)}")


def _interrupt(proc: subprocess.Popen) -> tuple[int, list[str]]:
    time.sleep(2.0)  # let it take some steps
    proc.send_signal(signal.SIGINT)
    rest = proc.stderr.read()
    return proc.wait(timeout=120), rest.strip().splitlines()


def test_sigint_saves_a_loadable_checkpoint_and_a_rerun_resumes_there(tmp_path):
    proc = _start(tmp_path)
    _wait_for(proc, "evaluation set")
    code, lines = _interrupt(proc)
    assert code == 130, lines
    assert lines and lines[-1].startswith("train: interrupted at step "), lines
    assert not any("Traceback" in ln for ln in lines), lines
    state = checkpoint.load(tmp_path / "train" / "last.pt")
    step = state["step"]
    assert step > 0 and f"at step {step};" in lines[-1]

    proc = _start(tmp_path)
    seen = _wait_for(proc, "resuming from")
    assert f"at step {step} " in seen[-1], seen[-1]
    code, lines = _interrupt(proc)
    assert code == 130 and checkpoint.load(tmp_path / "train" / "last.pt")["step"] > step


def test_two_process_gloo_run_trains_and_replicas_agree(tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    cmd = [
        str(Path(sys.executable).parent / "torchrun"),
        "--standalone",
        "--nproc-per-node=2",
        "-m",
        "tests.train.fakerun",
    ] + _args(
        tmp_path,
        "train.max_steps=12",
        "train.val_every_steps=6",
        "train.mining_fraction=0.25",
        "train.mining_min_prob=0.0",
    )
    done = subprocess.run(
        cmd, cwd=REPO, env={**_env(), "FAKERUN_DUMP": str(dump)}, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and "terminate called" not in done.stderr, done.stderr[-3000:]
    rank0, rank1 = torch.load(dump / "rank0.pt"), torch.load(dump / "rank1.pt")
    for name, tensor in rank0.items():
        if not name.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(tensor, rank1[name]), name  # identical steps on every replica
    state = checkpoint.load(tmp_path / "train" / "last.pt")
    assert state["step"] == 12 and state["data_summary"]["train_clips"] == 48
    assert any(not torch.equal(rank0[k], v) for k, v in _fresh_model(state).items()), "nothing was learnt"


def _fresh_model(state: dict) -> dict:
    from train.model import ModelConfig, make_head

    return make_head(ModelConfig.from_dict(state["model_config"]), seed=state["config"]["train"]["seed"]).state_dict()
