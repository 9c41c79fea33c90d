"""Training mechanics on a tiny model and the in-memory tone dataset (tests/train/fakedata.py):
learning, streaming equivalence, checkpoints, resume, interruption, refusal of a foreign config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.train import fakerun
from tests.train.fakedata import ToneClips
from tests.train.fakerun import fake_open_data
from train import checkpoint, config
from train import train as training
from train.batches import Schedule, collate
from train.distributed import Dist
from train.loss import frame_loss
from train.model import Head, ModelConfig

TINY = [*fakerun.TINY, "model.heads=1", "model.dropout=0.1"]


@pytest.fixture(autouse=True)
def _tone_data(monkeypatch):
    monkeypatch.setattr(training, "open_data", fake_open_data)


def _cfg(*extra: str) -> dict:
    return config.load(overrides=TINY + list(extra))


def test_tiny_model_overfits_a_handful_of_clips():
    torch.manual_seed(0)
    clips = ToneClips(6, seed=3)
    model = Head(ModelConfig(hidden=16, layers=1, dropout=0.0))
    x, y, m = collate([clips.features(i) for i in range(6)], [clips.labels(i) for i in range(6)])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(150):
        loss = frame_loss(model(x), y, m, pos_weight=4.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] / 50, (losses[0], losses[-1])
    model.eval()
    with torch.no_grad():
        probs = torch.sigmoid(model(x))
    assert float(probs[y > 0].mean()) > 0.8 and float(probs[y == 0].mean()) < 0.1


def test_chunked_streaming_equals_whole_clip():
    torch.manual_seed(1)
    model = Head(ModelConfig(hidden=10, layers=2, dropout=0.3))
    with torch.no_grad():  # a non-trivial input normalisation
        model.norm.weight.uniform_(0.5, 2)
        model.norm.bias.uniform_(-1, 1)
    model.eval()
    feats = torch.randn(2, 60, 96) * 10
    with torch.no_grad():
        whole = model(feats)
        for sizes in ([1], [6], [25], [1, 4, 7, 2]):
            state, outs, start, k = model.initial_state(2), [], 0, 0
            while start < feats.shape[1]:
                n = sizes[k % len(sizes)]
                out, state = model.step(feats[:, start : start + n], state)
                outs.append(out)
                start, k = start + n, k + 1
            torch.testing.assert_close(torch.cat(outs, dim=1), whole, atol=1e-5, rtol=0)


class StopAt(training.StopFlag):
    """Behaves like a Ctrl-C that arrives while step ``step`` is running."""

    def __init__(self, trainers: list, step: int):
        super().__init__()
        self._trainers, self._step = trainers, step

    def is_set(self) -> bool:
        return bool(self._trainers) and self._trainers[0].step >= self._step


def _capture_trainer(monkeypatch) -> list:
    seen = []
    original = training.Trainer.__init__

    def init(self, *a, **k):
        original(self, *a, **k)
        seen.append(self)

    monkeypatch.setattr(training.Trainer, "__init__", init)
    return seen


def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch):
    # with hard-negative mining on (min prob 0: every scored clip counts), so the mined set travels too
    cfg = _cfg(
        "train.max_steps=24",
        "train.val_every_steps=12",
        "train.mining_fraction=0.25",
        "train.mining_pool=16",
        "train.mining_min_prob=0.0",
    )
    assert training.run("tone", tmp_path / "a", cfg, Dist()) == 0
    reference = checkpoint.load(tmp_path / "a" / "train" / "last.pt")

    trainers = _capture_trainer(monkeypatch)
    assert training.run("tone", tmp_path / "b", cfg, Dist(), stop=StopAt(trainers, 11)) == 130
    interrupted = checkpoint.load(tmp_path / "b" / "train" / "last.pt")
    assert interrupted["step"] == 11
    assert training.run("tone", tmp_path / "b", cfg, Dist()) == 0
    resumed = checkpoint.load(tmp_path / "b" / "train" / "last.pt")

    assert resumed["step"] == reference["step"] == 24
    for name, tensor in reference["model"].items():
        assert torch.equal(tensor, resumed["model"][name]), name
    assert resumed["scheduler"]["last_epoch"] == reference["scheduler"]["last_epoch"]
    assert [h["step"] for h in resumed["history"]["val"]] == [12, 24]
    assert resumed["metrics"] == reference["metrics"]
    assert (tmp_path / "b" / "train" / "best.pt").is_file()
    assert len(resumed["hard_negatives"]["indices"]) == 16
    assert resumed["hard_negatives"] == reference["hard_negatives"]


def test_checkpoint_holds_the_contract(tmp_path):
    cfg = _cfg("train.max_steps=6", "train.val_every_steps=6", "train.plots=true", "train.plot_examples=2")
    assert training.run("tone", tmp_path, cfg, Dist()) == 0
    out = tmp_path / "train"
    state = checkpoint.load(out / "best.pt")
    for key in (
        "format",
        "keyword",
        "audio_params",
        "model_config",
        "config",
        "model",
        "optimizer",
        "scheduler",
        "step",
        "epoch",
        "rng",
        "metrics",
        "best",
        "data_summary",
    ):
        assert key in state, key
    assert state["keyword"] == "tone" and state["step"] == 6
    assert state["config"]["model"]["hidden"] == 16
    assert state["best"]["metric"] == "synthetic/miss@0.5" and state["best"]["step"] == 6
    assert set(state["metrics"]) == {"synthetic"} and "miss@0.5" in state["metrics"]["synthetic"]
    model = Head(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    assert (out / "config.json").is_file() and (out / "report.md").is_file()
    for png in ("curves.png", "det.png", "examples.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG", png
    assert not list(out.glob(".*.tmp")), "temp files left behind"


def test_two_heads_train_each_on_its_own_loss_and_resume(tmp_path):
    from train.model import Heads, make_head

    cfg = _cfg("model.heads=2", "train.max_steps=8", "train.val_every_steps=4")
    assert training.run("tone", tmp_path, cfg, Dist()) == 0
    state = checkpoint.load(tmp_path / "train" / "last.pt")
    assert state["model_config"]["heads"] == 2 and state["step"] == 8
    model = make_head(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    assert isinstance(model, Heads)
    a, b = (m.out.weight for m in model.members)
    assert not torch.allclose(a, b)  # two heads, not one copied
    # the same config resumes the two-head checkpoint (finished: nothing to do); one head is refused
    assert training.run("tone", tmp_path, cfg, Dist()) == 0
    with pytest.raises(checkpoint.CheckpointError, match="model.heads: 2 -> 1"):
        training.run("tone", tmp_path, _cfg("train.max_steps=8", "train.val_every_steps=4"), Dist())


def test_each_of_two_heads_learns_exactly_as_a_one_head_run_of_its_seed(tmp_path):
    """[model] heads = 2 is two runs in one: head k's weights are bit for bit those of a one-head
    run with seed + k (its own batches, masks, noise, dropout, loss and clipping). Here both heads
    follow the same recipe (``short_heads = 0``; the short recipe is the next test's)."""
    steps = ["train.max_steps=6", "train.val_every_steps=3", "model.dropout=0.3", "train.feature_noise=0.1"]
    steps.append("train.short_heads=0")
    assert training.run("tone", tmp_path / "two", _cfg("model.heads=2", "train.seed=5", *steps), Dist()) == 0
    for seed in (5, 6):
        assert training.run("tone", tmp_path / f"one{seed}", _cfg(f"train.seed={seed}", *steps), Dist()) == 0
    two = checkpoint.load(tmp_path / "two" / "train" / "last.pt")["model"]
    for k, seed in enumerate((5, 6)):
        one = checkpoint.load(tmp_path / f"one{seed}" / "train" / "last.pt")["model"]
        assert set(one) == {key.split(".", 2)[2] for key in two if key.startswith(f"members.{k}.")}
        for key, value in one.items():
            assert torch.equal(two[f"members.{k}.{key}"], value), (k, key)
    # and they did learn something different from each other
    assert not torch.equal(two["members.0.out.weight"], two["members.1.out.weight"])


def test_a_short_head_learns_as_a_short_strongly_regularised_run_and_then_stays(tmp_path):
    """[train] short_heads = 1: the last head's schedule ends at short_fraction of the run, with its
    own dropout, noise and masks -- bit for bit a one-head run of that length and recipe with its
    seed -- and it does not change after that; the first head is still exactly the long run."""
    steps = ["train.val_every_steps=4", "model.dropout=0.1", "train.feature_noise=0.1"]
    short = [
        "train.short_fraction=0.5",
        "train.short_dropout=0.5",
        "train.short_feature_noise=0.3",
        "train.short_freq_masks=3",
    ]
    cfg = _cfg("model.heads=2", "train.seed=5", "train.max_steps=8", "train.short_heads=1", *short, *steps)
    assert training.run("tone", tmp_path / "two", cfg, Dist()) == 0
    long_run = _cfg("train.seed=5", "train.max_steps=8", *steps)
    assert training.run("tone", tmp_path / "long", long_run, Dist()) == 0
    recipe = ["model.dropout=0.5", "train.feature_noise=0.3", "train.freq_masks=3", "train.time_masks=2"]
    short_run = _cfg("train.seed=6", "train.max_steps=4", *steps, *recipe)
    assert training.run("tone", tmp_path / "short", short_run, Dist()) == 0
    state = checkpoint.load(tmp_path / "two" / "train" / "last.pt")
    two = state["model"]
    for k, name in enumerate(("long", "short")):
        one = checkpoint.load(tmp_path / name / "train" / "last.pt")["model"]
        for key, value in one.items():
            assert torch.equal(two[f"members.{k}.{key}"], value), (name, key)
    # the model itself is an ordinary two-head model (the device runs it unchanged)
    assert state["model_config"]["heads"] == 2 and state["model_config"]["dropout"] == 0.1
    report = (tmp_path / "two" / "train" / "report.md").read_text()
    assert "1 long (the whole schedule) and 1 short (schedule ends at step 4" in report
    # a one-head model is one long head whatever short_heads says (the default sets 1)
    assert (
        training.run(
            "tone", tmp_path / "one", _cfg("train.seed=5", "train.max_steps=8", "train.short_heads=1", *steps), Dist()
        )
        == 0
    )
    one = checkpoint.load(tmp_path / "one" / "train" / "last.pt")["model"]
    assert all(torch.equal(one[key], two[f"members.0.{key}"]) for key in one)


def test_a_run_from_before_short_heads_resumes_only_as_it_was_trained(tmp_path):
    """A checkpoint whose config has no short_heads trained every head alike: today's default (1)
    refuses to resume it in one line; putting the old value back resumes it."""
    steps = ["model.heads=2", "train.val_every_steps=2", "train.max_steps=4"]
    assert training.run("tone", tmp_path, _cfg(*steps, "train.short_heads=0"), Dist()) == 0
    last = tmp_path / "train" / "last.pt"
    state = checkpoint.load(last)
    del state["config"]["train"]["short_heads"]  # as saved before the key existed
    checkpoint.save(last, state)
    with pytest.raises(checkpoint.CheckpointError, match="train.short_heads: '<unset>' -> 1"):
        training.run("tone", tmp_path, _cfg(*steps), Dist())
    assert training.run("tone", tmp_path, _cfg(*steps, "train.short_heads=0"), Dist()) == 0  # finished: nothing to do


def test_incompatible_checkpoint_is_refused_with_one_line(tmp_path, capsys):
    build = tmp_path / "b"
    args = ["--keyword", "tone", "--build", str(build)] + [a for s in TINY for a in ("--set", s)]
    assert training.main(args + ["--set", "train.max_steps=4", "--set", "train.val_every_steps=4"]) == 0
    before = (build / "train" / "last.pt").read_bytes()
    capsys.readouterr()
    code = training.main(args + ["--set", "train.max_steps=4", "--set", "model.hidden=24"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1  # the checkpoint on disk does not fit: a stage failure (train.stagecli)
    assert len(err) == 1, err
    assert "model.hidden: 16 -> 24" in err[0] and "to start fresh" in err[0], err[0]
    assert (build / "train" / "last.pt").read_bytes() == before  # nothing touched


def test_corrupt_checkpoint_is_one_clear_line(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"PK\x03\x04 not really a checkpoint")
    with pytest.raises(checkpoint.CheckpointError) as err:
        checkpoint.load(path)
    assert "\n" not in str(err.value) and "delete it" in str(err.value)


def test_damaged_unsafe_or_non_finite_checkpoints_are_refused(tmp_path):
    cfg = _cfg("train.max_steps=4", "train.val_every_steps=4")
    assert training.run("tone", tmp_path, cfg, Dist()) == 0
    good = tmp_path / "train" / "last.pt"
    checkpoint.load(good)  # loads weights-only, RNG state and all
    data = bytearray(good.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 1024] = np.random.default_rng(0).bytes(1024)  # what a bad disk sector does
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(bytes(data))
    with pytest.raises(checkpoint.CheckpointError, match="damaged"):
        checkpoint.load(damaged)

    marker = tmp_path / "ran"
    state = checkpoint.load(good)
    state["metrics"] = Payload(str(marker))  # a pickle that would run `touch` when loaded
    torch.save(state, tmp_path / "evil.pt")
    with pytest.raises(checkpoint.CheckpointError, match="could run code"):
        checkpoint.load(tmp_path / "evil.pt")
    assert not marker.exists()

    state = checkpoint.load(good)
    name = next(iter(state["model"]))
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(checkpoint.CheckpointError, match="non-finite weights"):
        checkpoint.load(tmp_path / "nan.pt")


class Payload:
    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.path}",)


def test_a_diverging_run_stops_with_one_line_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    build = tmp_path / "b"
    args = ["--keyword", "tone", "--build", str(build)] + [a for s in TINY for a in ("--set", s)]
    step, loss = training.Trainer.train_step, training.frame_loss
    diverged = []

    def train_step(self, clips):  # from step 5 on, the loss is NaN (as with a bad clip)
        diverged[:] = [self.step >= 4]
        return step(self, clips)

    monkeypatch.setattr(training.Trainer, "train_step", train_step)
    monkeypatch.setattr(training, "frame_loss", lambda *a: loss(*a) * (float("nan") if diverged[0] else 1.0))
    code = training.main(args + ["--set", "train.max_steps=8", "--set", "train.val_every_steps=4"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and err and "training diverged at step 5" in err[-1] and "last good step" in err[-1], err
    kept = checkpoint.load(build / "train" / "last.pt")  # finite (load checks), from the step-4 validation
    assert kept["step"] == 4


def test_schedule_covers_each_epoch_once_and_splits_replicas():
    sched = Schedule(n_clips=40, batch_size=4, world=2, seed=5)
    assert sched.steps_per_epoch == 5
    seen = np.concatenate([sched.indices(s, r) for s in range(5) for r in range(2)])
    assert sorted(seen.tolist()) == list(range(40))
    assert not np.array_equal(sched.indices(0, 0), sched.indices(5, 0))  # next epoch reshuffled
    assert np.array_equal(sched.indices(7, 1), Schedule(40, 4, 2, 5).indices(7, 1))  # stateless


def test_mining_finds_off_keyword_false_fires_only():
    from device.params import AudioParams
    from train.mining import mine, off_keyword_mask

    params = AudioParams()
    clips = ToneClips(4, seed=5)
    meta = clips.meta(0)
    n_out = len(clips.features(0))
    mask = off_keyword_mask(meta, n_out, params, guard_s=0.3)
    kw = meta["keywords"][0]
    t = (np.arange(n_out) + 1) * params.output_hop_s
    assert not mask[(t > kw["start_s"]) & (t < kw["end_s"] + 0.4)].any()
    assert mask[t < kw["start_s"] - 0.4].all() and mask[t > kw["end_s"] + 0.8].all()

    class FiresEverywhere(torch.nn.Module):
        cfg = ModelConfig()

        def forward(self, x):
            return torch.full((x.shape[0], x.shape[1]), 3.0)

    hard = mine(FiresEverywhere(), clips, np.arange(4), params, torch.device("cpu"), min_prob=0.5)
    assert sorted(hard.indices.tolist()) == [0, 1, 2, 3]
    assert np.allclose(hard.weights, 1 / (1 + np.exp(-3.0)))
    draws = hard.draw(50, np.random.default_rng(0))
    assert set(draws.tolist()) <= {0, 1, 2, 3}


def test_resume_refuses_a_rebuilt_dataset(tmp_path):
    state = {"keyword": "tone", "config": {"train": {"seed": 1}}, "data_summary": {"build_key": "aaa"}}
    checkpoint.check_resumable(
        state, "tone", {"train": {"seed": 1, "max_minutes": 5}}, tmp_path / "last.pt", {"build_key": "aaa"}
    )  # a run-time key may change
    with pytest.raises(checkpoint.CheckpointError, match="dataset build key: aaa -> bbb"):
        checkpoint.check_resumable(state, "tone", {"train": {"seed": 1}}, tmp_path / "last.pt", {"build_key": "bbb"})
    with pytest.raises(checkpoint.CheckpointError, match="train.seed: 1 -> 2"):
        checkpoint.check_resumable(state, "tone", {"train": {"seed": 2}}, tmp_path / "last.pt", {"build_key": "aaa"})


def test_fine_tune_starts_from_the_given_weights_and_refuses_another_model(tmp_path, capsys):
    base = tmp_path / "base"
    assert training.run("tone", base, _cfg("train.max_steps=8", "train.val_every_steps=8"), Dist()) == 0
    init = base / "train" / "best.pt"
    shipped = checkpoint.load(init)

    # zero steps of fine-tuning would be the shipped weights; one step at a tiny rate stays next to them,
    # while a fresh run of the same seed starts far away
    ft_cfg = _cfg(
        "train.max_steps=1",
        "train.val_every_steps=1",
        "train.lr=1e-7",
        "train.warmup_steps=0",
        f"train.init_from={init}",
    )
    assert training.run("tone", tmp_path / "ft", ft_cfg, Dist()) == 0
    tuned = checkpoint.load(tmp_path / "ft" / "train" / "last.pt")
    assert tuned["step"] == 1 and tuned["init_from"]["path"] == str(init) and tuned["init_from"]["step"] == 8
    assert "fine-tuned from" in (tmp_path / "ft" / "train" / "report.md").read_text()
    weights = [k for k, v in shipped["model"].items() if v.dtype.is_floating_point and "running" not in k]
    for k in weights:
        torch.testing.assert_close(tuned["model"][k], shipped["model"][k], atol=1e-4, rtol=0)
    fresh_cfg = _cfg("train.max_steps=1", "train.val_every_steps=1", "train.lr=1e-7", "train.warmup_steps=0")
    assert training.run("tone", tmp_path / "fresh", fresh_cfg, Dist()) == 0
    fresh = checkpoint.load(tmp_path / "fresh" / "train" / "last.pt")
    assert fresh["init_from"] is None
    assert any(not torch.allclose(fresh["model"][k], shipped["model"][k], atol=1e-3) for k in weights)

    # a checkpoint of another model size: one line, nothing written
    args = ["--keyword", "tone", "--build", str(tmp_path / "other")] + [a for s in TINY for a in ("--set", s)]
    capsys.readouterr()
    code = training.main(args + ["--set", "model.hidden=24", "--set", f"train.init_from={init}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, err
    assert "init_from" in err[0] and "hidden: 16 -> 24" in err[0], err[0]
    assert not (tmp_path / "other" / "train" / "last.pt").exists()
    code = training.main(args + ["--set", f"train.init_from={tmp_path / 'missing.pt'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "missing.pt does not exist" in err[0], err


def test_select_last_keeps_the_latest_validation_as_best(tmp_path):
    cfg = _cfg("train.max_steps=12", "train.val_every_steps=6", 'train.select="last"')
    assert training.run("tone", tmp_path, cfg, Dist()) == 0
    best = checkpoint.load(tmp_path / "train" / "best.pt")
    last = checkpoint.load(tmp_path / "train" / "last.pt")
    assert best["step"] == last["step"] == 12 and best["best"]["step"] == 12
    for name, tensor in last["model"].items():
        assert torch.equal(tensor, best["model"][name]), name
    assert '[train] select = "last"' in (tmp_path / "train" / "report.md").read_text()
    with pytest.raises(ValueError, match="select must be"):
        training.TrainConfig(select="best")


def test_checkpoints_load_from_several_threads_at_once(tmp_path):
    """`make loop` starts two fine-tunes in threads; each loads the shipped checkpoint (weights only,
    numpy RNG state allowed). The allowance is process-wide state: it must not be lost mid-load."""
    from concurrent.futures import ThreadPoolExecutor

    cfg = _cfg("train.max_steps=2", "train.val_every_steps=2")
    assert training.run("tone", tmp_path, cfg, Dist()) == 0
    good = tmp_path / "train" / "last.pt"

    def load_many(_):
        return [sorted(checkpoint.load(good)) for _ in range(15)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(load_many, range(4)))
    assert all(keys == results[0][0] for r in results for keys in r)
