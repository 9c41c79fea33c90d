"""``make train``: train the wake-word head on the synthesised clips' embeddings; never lose progress.

    python -m train.train --keyword computer --build build/computer [--quick] [--config F]... [--set k=v]...
    torchrun --standalone --nproc-per-node=N -m train.train ...      (make train NPROC=N)

The story, top to bottom:

1. resolve the config (``[audio]``, ``[model]``, ``[train]``, ``[streams]``) and write it to
   ``<build>/train/config.json``;
2. open the dataset's ``train`` and ``val`` splits and build the evaluation sets: held-out
   synthetic voices, and -- when ``../shared/data`` is there -- real "computer" recordings
   and real negative speech, clean and in noise (:mod:`train.evalsets`);
3. build the model and optimiser, or resume them from ``last.pt`` (same step, optimiser,
   schedule, RNG; a checkpoint from another config is refused with one line);
4. step until ``max_steps`` or the ``max_minutes`` budget; every ``val_every_steps`` score the
   evaluation sets like the Pi would (detections, false accepts per hour), save ``last.pt``
   and ``best.pt`` (the latest validation, or with ``select = "metric"`` the one with the lowest
   miss rate at ``select_fa_per_hour`` on held-out synthetic voices); redraw the plots and the report;
5. Ctrl-C (SIGINT) or SIGTERM: finish the current step, save ``last.pt``, exit with one line.

With a time budget the run plans its number of steps once it has measured how fast steps
and validations go (at the first validation), so the learning rate decays fully within the
budget; the plan is stored in the checkpoint, so a resumed run keeps it.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypedDict

import numpy as np
import torch

from device.params import AudioParams
from device.stopflag import StopFlag
from train import checkpoint, config
from train.batches import FeatureAugment, Schedule, collate, step_seed
from train.distributed import Dist
from train.loss import frame_loss
from train.mining import HardSet, mine, pool_for
from train.model import ModelConfig, make_head
from train.streams import StreamConfig
from train.validate import EvalSet, SetResult, validate

log = logging.getLogger("train")


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    """Seeds model initialisation, batch order, feature masks/noise and dropout."""
    init_from: str = ""
    """Fine-tune: start from this checkpoint's weights (e.g. ``build/computer/train/best.pt``,
    same keyword, ``[model]`` and ``[audio]``) instead of random ones; the optimiser, schedule and
    step count start afresh (configs/finetune.toml sets a short, gentle schedule). A run that
    resumes from its own ``last.pt`` ignores it."""
    batch_size: int = 32
    """Clips per step (per replica when distributed)."""
    lr: float = 3e-3
    """Peak learning rate (AdamW), reached after the warm-up."""
    min_lr_ratio: float = 0.03
    """The cosine decay ends at ``lr * min_lr_ratio``."""
    warmup_steps: int = 150
    """Linear warm-up from ~0 to ``lr``."""
    weight_decay: float = 0.01
    """AdamW decoupled weight decay."""
    grad_clip: float = 5.0
    """Largest gradient norm (0 = no clipping)."""
    max_steps: int = 4000
    """Most optimiser steps (the learning-rate schedule ends there); ~20 epochs of the default
    6000 clips. Longer runs fit the TTS voices better and real voices worse (docs/experiments.md)."""
    max_minutes: float = 36.0
    """Time budget for training steps and validations (minutes; sessions before an interruption
    count; one-off setup such as building the evaluation streams does not), 0 = none. The
    number of steps is planned from measured speed so the schedule completes within it."""
    pos_weight: float = 4.0
    """Loss weight of positive frames relative to negative ones."""
    focal_gamma: float = 0.0
    """Focal-loss exponent (0 = plain weighted BCE)."""
    time_masks: int = 1
    """Embedding masks: time masks per clip (train.batches.FeatureAugment)."""
    time_mask_frames: int = 2
    """Embedding masks: widest time mask (80 ms frames)."""
    freq_masks: int = 2
    """Embedding masks: masks over embedding dimensions per clip."""
    freq_mask_bins: int = 8
    """Embedding masks: widest mask over dimensions."""
    feature_noise: float = 0.1
    """Gaussian noise on the embeddings (fraction of their standard deviation)."""
    short_heads: int = 1
    """The last ``short_heads`` of the ``[model] heads`` (at most all but one: a one-head model is
    one long head) follow the short recipe: their
    learning-rate schedule ends at ``short_fraction`` of the run's, after which they stay as they
    are, and they train with stronger regularisation (the ``short_*`` values below instead of
    ``[model] dropout``, ``feature_noise``, ``freq_masks``, ``time_masks``). Longer training fits the
    TTS voices better and, on some keywords, real voices worse; two long heads and a short one
    missed fewer real keywords than two long ones, averaged over four keywords and two seed pairs
    (docs/experiments.md, "A long head and a short head"). 0 = every head the same (runs trained
    before this existed)."""
    short_fraction: float = 0.25
    """Where a short head's schedule ends, as a share of the run's planned steps."""
    short_dropout: float = 0.5
    """A short head's dropout (in place of ``[model] dropout``)."""
    short_feature_noise: float = 0.25
    """A short head's embedding noise (in place of ``feature_noise``)."""
    short_freq_masks: int = 4
    """A short head's masks over embedding dimensions (in place of ``freq_masks``)."""
    short_time_masks: int = 2
    """A short head's time masks (in place of ``time_masks``)."""
    mining_fraction: float = 0.0
    """Share of each batch drawn from mined hard negatives (0 = no mining; see train.mining)."""
    mining_pool: int = 800
    """Training clips scored for hard negatives at each validation."""
    mining_min_prob: float = 0.1
    """A clip is a hard negative when its highest off-keyword probability reaches this."""
    val_every_steps: int = 500
    """Steps between validations (each saves last.pt, maybe best.pt, plots and the report)."""
    select: str = "last"
    """Which validation ``best.pt`` (what export and fine-tuning read) keeps: "last" (the end of the
    learning-rate schedule) or "metric" (the lowest miss rate at ``select_fa_per_hour`` on
    ``select_set``). Choosing on held-out synthetic voices picked a checkpoint that missed more
    real voices in 2 of 6 runs, by 13-21 points (docs/experiments.md): "last" is the default."""
    select_fa_per_hour: float = 0.5
    """With select = "metric": best.pt minimises the miss rate at this many false accepts per hour ..."""
    select_set: str = "synthetic"
    """... on this evaluation set (held-out synthetic voices; real data is reported, not used)."""
    real_data: str = "auto"
    """Real recordings to report on: "auto" (../shared/data when present), "off", or a folder."""
    threads: int = 1
    """torch CPU threads per process (0 = torch's default, all cores). One thread is the measured
    best for this small GRU model on a shared machine (two threads were 1.8-11x *slower* per
    step while other jobs ran); use ``NPROC=N`` to spread training over N cores instead."""
    device: str = "auto"
    """"auto" (CUDA when present, else CPU), "cpu" or "cuda"."""
    progress: bool = True
    """Show a progress bar with live metrics."""
    plots: bool = True
    """Redraw the plots at every validation (curves, DET, examples)."""
    plot_examples: int = 4
    """Example streams drawn with spectrogram, label and prediction."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_steps < 1 or self.val_every_steps < 1:
            raise ValueError("batch_size, max_steps and val_every_steps must be >= 1")
        if self.lr <= 0 or not 0 < self.min_lr_ratio <= 1 or self.warmup_steps < 0:
            raise ValueError("need lr > 0, 0 < min_lr_ratio <= 1, warmup_steps >= 0")
        if self.max_minutes < 0 or self.pos_weight <= 0 or self.focal_gamma < 0:
            raise ValueError("need max_minutes >= 0, pos_weight > 0, focal_gamma >= 0")
        if self.select not in ("last", "metric"):
            raise ValueError(f"select must be last or metric, got {self.select!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if self.short_heads < 0 or not 0 < self.short_fraction <= 1 or not 0 <= self.short_dropout < 1:
            raise ValueError("need short_heads >= 0, 0 < short_fraction <= 1 and 0 <= short_dropout < 1")

    def feature_augment(self, short: bool = False) -> FeatureAugment:
        """The embedding masks and noise of a head (``short``: one following the short recipe)."""
        time, freq, noise = (
            (self.short_time_masks, self.short_freq_masks, self.short_feature_noise)
            if short
            else (self.time_masks, self.freq_masks, self.feature_noise)
        )
        return FeatureAugment(time, self.time_mask_frames, freq, self.freq_mask_bins, noise)


class Interrupted(Exception):
    """Ctrl-C or SIGTERM: stop after the current step."""


# -- configuration -------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from train import stagecli

    return stagecli.parser("python -m train.train", __doc__.split("\n")[0]).parse_args(argv)


def model_config(cfg: dict, params: AudioParams) -> ModelConfig:
    """``[model]`` with ``embed_dim`` taken from the front end."""
    from train.frontend import EMBED_DIM, FrontendError, check_params

    try:
        check_params(params)
    except FrontendError as exc:
        raise config.ConfigError(str(exc)) from None
    mc = config.section(cfg, "model", ModelConfig)
    if "embed_dim" in cfg.get("model", {}) and mc.embed_dim != EMBED_DIM:
        raise config.ConfigError(f"[model] embed_dim={mc.embed_dim} differs from the front end's {EMBED_DIM}")
    return replace(mc, embed_dim=EMBED_DIM)


def pick_device(tc: TrainConfig, dist: Dist) -> torch.device:
    if tc.threads:
        torch.set_num_threads(tc.threads)
    if tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise config.ConfigError('[train] device = "cuda" but no CUDA device is available')
        return torch.device("cuda", dist.local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def lr_factor(step: int, warmup_steps: int, planned_steps: int, min_ratio: float) -> float:
    """Linear warm-up, then cosine decay to ``min_ratio`` at ``planned_steps``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, planned_steps - warmup_steps))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# -- the run -------------------------------------------------------------------------


class Best(TypedDict):
    """A checkpoint's ``best``: the figure that selects ``best.pt``, and its value and step so far."""

    metric: str
    value: float | None
    step: int | None


class Trainer:
    """Model, optimiser and bookkeeping of one run; everything a checkpoint holds."""

    def __init__(
        self,
        keyword: str,
        out_dir: Path,
        cfg: dict,
        params: AudioParams,
        mc: ModelConfig,
        tc: TrainConfig,
        device: torch.device,
        dist: Dist,
        schedule: Schedule,
        data_summary: dict,
    ):
        self.keyword, self.out_dir, self.cfg, self.params = keyword, out_dir, cfg, params
        self.tc, self.device, self.dist, self.data_summary = tc, device, dist, data_summary
        self.schedule = schedule
        self.model = make_head(mc, seed=tc.seed).to(device)
        self.schedules = [replace(schedule, seed=tc.seed + k) for k in range(mc.heads)]
        """Head ``k``'s batches: those of a one-head run with seed ``seed + k``."""
        n_short = min(tc.short_heads, mc.heads - 1)
        self.short = [k >= mc.heads - n_short for k in range(mc.heads)]
        """Which heads follow the short recipe: the last ``[train] short_heads``, leaving one long head at least."""
        for head, short in zip(self.model.heads, self.short):
            if short:
                head.set_dropout(tc.short_dropout)
        self.augments = [tc.feature_augment(short) for short in self.short]
        self.ddp = dist.wrap(self.model, device)
        # With short heads, one parameter group per head, each with its own schedule.
        groups = [{"params": list(h.parameters())} for h in self.model.heads] if n_short else None
        self.opt = torch.optim.AdamW(groups or self.model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay)
        self.planned_steps = tc.max_steps  # replanned at every validation when there is a time budget
        self.last_val_s = 0.0
        lambdas: list[Callable[[int], float]] = (
            [self._short_lr_lambda if short else self._lr_lambda for short in self.short]
            if groups
            else [self._lr_lambda]
        )  # one per parameter group
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, lambdas)
        self.step = 0
        self.validated_step = -1
        self.elapsed_s = 0.0
        self.train_s = 0.0  # of which in training steps (for the throughput figure)
        self.hard = HardSet.empty()
        self.history: dict[str, list] = {"train": [], "val": []}
        self.metrics: dict = {}
        self.best: Best = {"metric": f"{tc.select_set}/miss@{tc.select_fa_per_hour:g}", "value": None, "step": None}
        self.init_from: dict | None = None
        """The checkpoint a fine-tune started from (``[train] init_from``), else None."""

    def start_clock(self) -> None:
        """Count training time from now on, on top of what earlier sessions spent."""
        self._clock = (time.monotonic(), self.elapsed_s)

    def tick(self) -> float:
        """Update and return ``elapsed_s``: seconds of training over all sessions."""
        started, before = self._clock
        self.elapsed_s = before + time.monotonic() - started
        return self.elapsed_s

    def _lr_lambda(self, step: int) -> float:
        return lr_factor(step, self.tc.warmup_steps, self.planned_steps, self.tc.min_lr_ratio)

    @property
    def short_steps(self) -> int:
        """The step at which the short heads' schedule ends (they stay as they are from there)."""
        return max(1, round(self.tc.short_fraction * self.planned_steps))

    def _short_lr_lambda(self, step: int) -> float:
        if step >= self.short_steps:
            return 0.0  # AdamW with a learning rate of 0 changes nothing, weight decay included
        return lr_factor(step, self.tc.warmup_steps, self.short_steps, self.tc.min_lr_ratio)

    # -- checkpoints ---------------------------------------------------------------
    def state(self) -> dict:
        return {
            "keyword": self.keyword,
            "audio_params": self.params.to_dict(),
            "model_config": self.model.cfg.to_dict(),
            "config": self.cfg,
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "step": self.step,
            "epoch": self.epoch,
            "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
            "metrics": self.metrics,
            "best": self.best,
            "data_summary": self.data_summary,
            "history": self.history,
            "planned_steps": self.planned_steps,
            "elapsed_s": self.elapsed_s,
            "train_s": self.train_s,
            "hard_negatives": self.hard.to_dict(),
            "init_from": self.init_from,
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.planned_steps = int(state["planned_steps"])
        self.sched.load_state_dict(state["scheduler"])
        self.step, self.elapsed_s = int(state["step"]), float(state["elapsed_s"])
        self.train_s = float(state.get("train_s", 0.0))
        self.hard = HardSet.from_dict(state.get("hard_negatives") or HardSet.empty().to_dict())
        self.history, self.metrics, self.best = state["history"], state["metrics"], state["best"]
        self.init_from = state.get("init_from")
        torch.set_rng_state(state["rng"]["torch"])
        np.random.set_state(state["rng"]["numpy"])
        random.setstate(state["rng"]["python"])

    def save(self, name: str) -> Path:
        return checkpoint.save(self.out_dir / name, self.state())

    @property
    def clips_per_s(self) -> float:
        """Training throughput over all sessions (clips through forward + backward per second)."""
        return self.step * self.tc.batch_size * self.dist.world / self.train_s if self.train_s else 0.0

    @property
    def epoch(self) -> int:
        return self.schedule.epoch(self.step)

    # -- one step ------------------------------------------------------------------
    def train_step(self, clips) -> float:
        """One optimiser step on this replica's share of the step's batches -> its loss (the
        heads' mean). Head ``k`` trains as a one-head run with seed ``seed + k`` would: its own
        batch, masks, noise and dropout (:mod:`train.batches`: pure functions of seed and step),
        its own loss and its own gradient clipping. A short head whose schedule has ended is left
        out (its learning rate is 0 from there: it would not change anyway), except when distributed,
        where every replica's graph must hold every parameter."""
        seeds = [self.tc.seed + k for k in range(self.model.cfg.heads)]
        ended = not self.dist.active and self.step >= self.short_steps
        active = [not (short and ended) for short in self.short]
        xs: list[torch.Tensor | None] = []
        ys, ms = [], []
        for seed, schedule, augment, on in zip(seeds, self.schedules, self.augments, active):
            if not on:
                xs.append(None)
                continue
            idx = schedule.indices(self.step, self.dist.rank)
            n_hard = round(self.tc.mining_fraction * len(idx)) if len(self.hard) else 0
            if n_hard:
                idx[-n_hard:] = self.hard.draw(
                    n_hard, np.random.default_rng(step_seed(seed + 2, self.step, self.dist.rank))
                )
            x, y, m = collate([clips.features(int(i)) for i in idx], [clips.labels(int(i)) for i in idx])
            x = augment(x, torch.Generator().manual_seed(step_seed(seed + 1, self.step, self.dist.rank)))
            xs.append(x.to(self.device))
            ys.append(y.to(self.device))
            ms.append(m.to(self.device))
        self.ddp.train()
        logits = self.ddp(xs, seeds=[step_seed(seed, self.step, self.dist.rank) for seed in seeds])
        logits = [lg for lg in logits if lg is not None]
        losses = [frame_loss(lg, y, m, self.tc.pos_weight, self.tc.focal_gamma) for lg, y, m in zip(logits, ys, ms)]
        self.opt.zero_grad(set_to_none=True)
        torch.stack(losses).sum().backward()  # each head's gradient is its own loss's alone
        # The gradients are averaged across replicas by now, so every replica sees the same norms
        # and stops together: a non-finite step is never taken (nothing non-finite is saved).
        norms = [
            torch.nn.utils.clip_grad_norm_(head.parameters(), self.tc.grad_clip or float("inf"))
            for head in self.model.heads
        ]
        loss = torch.stack(losses).mean()
        if not all(bool(torch.isfinite(n)) for n in norms):
            raise NonFiniteLoss(
                f"training diverged at step {self.step + 1}: the loss or its gradients are "
                f"not finite (loss {float(loss.detach()):g}); {self.out_dir / 'last.pt'} keeps "
                "the last good step (if any) -- check the data and lower [train] lr, or resume "
                "to retry"
            )
        self.opt.step()
        self.sched.step()
        self.step += 1
        return float(loss.detach())

    def plan(self, step_s: float, val_s: float) -> None:
        """Set ``planned_steps`` so the remaining steps and validations fit the time budget, at the
        speed measured since the last validation (so a machine that slows down still finishes
        its learning-rate schedule inside the budget)."""
        if self.step >= self.planned_steps:
            return  # the final validation: the schedule has ended, keep it ended
        left_s = 0.97 * self.tc.max_minutes * 60 - self.elapsed_s
        per_step = step_s + val_s / self.tc.val_every_steps
        planned = int(min(self.tc.max_steps, self.step + max(0.0, left_s) / per_step))
        if planned != self.planned_steps:
            log.info(
                "planned %d steps (%.3f s/step, %.1f s/validation, %.1f of %g min used)",
                planned,
                step_s,
                val_s,
                self.elapsed_s / 60,
                self.tc.max_minutes,
            )
        self.planned_steps = max(planned, self.step)


def main(argv: list[str] | None = None) -> int:
    from train import stagecli

    args = parse_args(argv)
    main_process = os.environ.get("RANK", "0") == "0"
    logging.basicConfig(
        level=logging.INFO if main_process else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    dist = Dist()

    def body() -> int:
        nonlocal dist
        cfg = stagecli.load_config(args)
        tc = config.section(cfg, "train", TrainConfig)
        dist = Dist.from_env(cuda=tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available()))
        return run(args.keyword, args.build, cfg, dist)

    try:
        # before the loop (nothing to save yet), or a second Ctrl-C inside it
        return stagecli.run(
            "train",
            body,
            (checkpoint.CheckpointError, DataError, NonFiniteLoss),
            f"{args.build / 'train' / 'last.pt'} holds the last saved step (if any) -- "
            "run `make train` again to resume",
        )
    finally:
        dist.close()


class DataError(RuntimeError):
    """The dataset is missing or does not fit this configuration; one plain line."""


class NonFiniteLoss(RuntimeError):
    """A step whose loss or gradients are NaN/inf: training stops, the last good checkpoint stays."""


def run(keyword: str, build: Path, cfg: dict, dist: Dist, stop: StopFlag | None = None) -> int:
    """The whole training run -> exit status (0 done, 130 interrupted). ``stop``: the flag the
    loop polls between steps (default: one set by SIGINT/SIGTERM, :class:`device.stopflag.StopFlag`)."""
    from train import evalsets

    params = config.section(cfg, "audio", AudioParams)
    mc = model_config(cfg, params)
    tc = config.section(cfg, "train", TrainConfig)
    sc = config.section(cfg, "streams", StreamConfig)
    out_dir = build / "train"
    device = pick_device(tc, dist)
    clips, val_clips = open_data(build / "dataset", params, keyword)
    summary = data_summary(clips, val_clips)

    schedule = Schedule(len(clips), tc.batch_size, dist.world, tc.seed)
    trainer = Trainer(keyword, out_dir, cfg, params, mc, tc, device, dist, schedule, summary)
    if not resume(trainer, out_dir / "last.pt", keyword, cfg) and tc.init_from:
        start_from(trainer, Path(tc.init_from))
    if dist.is_main:
        config.dump_json(cfg, out_dir / "config.json")
    sets: list[EvalSet] = []
    if dist.is_main:
        sets = evalsets.build(val_clips, params, sc, tc.real_data, build / "streams", keyword)
        for s in sets:
            log.info(
                "evaluation set %-12s %5d streams %5.2f h %4d keywords",
                s.name,
                len(s.feats),
                s.hours(params),
                s.keywords,
            )
    dist.barrier()
    if trainer.step >= trainer.planned_steps or (tc.max_minutes and trainer.elapsed_s >= tc.max_minutes * 60):
        log.info(
            "training already finished at step %d (%s); nothing to do -- move %s away to train afresh",
            trainer.step,
            out_dir / "last.pt",
            out_dir,
        )
        return 0

    own = stop is None
    stop = stop or StopFlag()
    try:
        with stop.installed(second_sigint_raises=True):
            status = loop(trainer, clips, sets, stop)
    finally:
        if own:
            stop.close()
    if status == "interrupted":
        if dist.is_main:
            print(
                f"train: interrupted at step {trainer.step}; saved {out_dir / 'last.pt'} "
                "-- run `make train` again to resume",
                file=sys.stderr,
            )
        return 130
    if dist.is_main:
        best = trainer.best
        log.info(
            "done: %d steps in %.1f min (%.1f clips/s); best %s = %s at step %s -> %s",
            trainer.step,
            trainer.elapsed_s / 60,
            trainer.clips_per_s,
            best["metric"],
            best["value"],
            best["step"],
            out_dir / "best.pt",
        )
    return 0


def open_data(dataset_dir: Path, params: AudioParams, keyword: str):
    """The ``train`` and ``val`` splits, checked against this run's keyword and audio numbers."""
    from train.dataset import open_split

    if not dataset_dir.is_dir():
        raise DataError(f"no dataset at {dataset_dir}; build it first with `make data`")
    try:
        clips, val = open_split(dataset_dir, "train"), open_split(dataset_dir, "val")
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot open the dataset in {dataset_dir}: {exc}") from None
    if clips.params != params:
        diff = [
            f"{k}: {v} -> {params.to_dict()[k]}" for k, v in clips.params.to_dict().items() if params.to_dict()[k] != v
        ]
        raise DataError(
            f"the dataset in {dataset_dir} was built with other audio parameters "
            f"({'; '.join(diff)}); rebuild it with `make data`"
        )
    if clips.keyword != keyword:
        raise DataError(f"the dataset in {dataset_dir} is for keyword {clips.keyword!r}, not {keyword!r}")
    if len(clips) == 0 or len(val) == 0:
        raise DataError(
            f"the dataset in {dataset_dir} has {len(clips)} training and {len(val)} "
            "validation clips; both must be non-empty"
        )
    return clips, val


def data_summary(clips, val) -> dict:
    """What the checkpoint records about the data it learnt from (from the dataset manifest)."""
    summary = {"train_clips": len(clips), "val_clips": len(val)}
    extra = getattr(clips, "summary", None)
    if callable(extra):
        extra = extra()
    if isinstance(extra, dict):
        summary.update(extra)
    return summary


def resume(trainer: Trainer, path: Path, keyword: str, cfg: dict) -> bool:
    """Load ``last.pt`` into ``trainer`` when it exists and fits; False when starting fresh."""
    if not path.exists():
        return False
    state = checkpoint.load(path)
    checkpoint.check_resumable(state, keyword, cfg, path, trainer.data_summary)
    trainer.restore(state)
    log.info("resuming from %s at step %d (%.1f min trained so far)", path, trainer.step, trainer.elapsed_s / 60)
    return True


def start_from(trainer: Trainer, path: Path) -> None:
    """Load the weights of ``path`` (``[train] init_from``) into a fresh run; refuse, in one
    line, a checkpoint of another keyword, model or audio front end."""
    state = checkpoint.load(path)
    problems = []
    if state.get("keyword") != trainer.keyword:
        problems.append(f"keyword {state.get('keyword')!r}, not {trainer.keyword!r}")
    if state.get("audio_params") != trainer.params.to_dict():
        problems.append("other [audio] parameters")
    ours, theirs = trainer.model.cfg.to_dict(), ModelConfig.from_dict(state.get("model_config") or {}).to_dict()
    if theirs != ours:
        problems.append(
            "another [model] ("
            + ", ".join(f"{k}: {v} -> {ours.get(k)}" for k, v in theirs.items() if ours.get(k) != v)
            + ")"
        )
    if problems:
        raise checkpoint.CheckpointError(
            f"[train] init_from = {path}: it has {'; '.join(problems)}; "
            "fine-tune with the configuration it was trained with"
        )
    trainer.model.load_state_dict(state["model"])
    trainer.init_from = {
        "path": str(path),
        "step": int(state.get("step", 0)),
        "build_key": (state.get("data_summary") or {}).get("build_key"),
    }
    log.info("fine-tuning from %s (step %d of its run)", path, trainer.init_from["step"])


def loop(trainer: Trainer, clips, sets: list[EvalSet], stop: StopFlag) -> str:
    """Train until planned, out of time, or interrupted -> "done" | "budget" | "interrupted"."""
    tc, dist = trainer.tc, trainer.dist
    trainer.start_clock()
    bar = progress_bar(trainer)
    step_time, steps_timed = 0.0, 0
    ema = None
    status = "done"
    while trainer.step < trainer.planned_steps:
        over = bool(tc.max_minutes) and trainer.tick() > tc.max_minutes * 60
        interrupted, out_of_time = dist.any_of([stop.is_set(), dist.is_main and over])
        if interrupted or out_of_time:
            status = "interrupted" if interrupted else "budget"
            break
        t0 = time.monotonic()
        loss = trainer.train_step(clips)
        trainer.train_s += time.monotonic() - t0
        if trainer.step > 1:  # the first step pays for warm-up allocations
            step_time, steps_timed = step_time + time.monotonic() - t0, steps_timed + 1
        ema = loss if ema is None else 0.98 * ema + 0.02 * loss
        if trainer.step % 10 == 0 or trainer.step == 1:
            trainer.history["train"].append({"step": trainer.step, "loss": ema, "lr": trainer.sched.get_last_lr()[0]})
        if bar is not None:
            bar.update(1)
            if trainer.step % 5 == 0:
                bar.set_postfix_str(postfix(trainer, ema), refresh=False)
        if trainer.step % tc.val_every_steps == 0 or trainer.step == trainer.planned_steps:
            validation_round(trainer, clips, sets, step_time / max(steps_timed, 1))
            step_time, steps_timed = 0.0, 0
            if bar is not None:
                bar.total = trainer.planned_steps
    if status == "interrupted":
        trainer.tick()
        if dist.is_main:
            trainer.save("last.pt")
    elif trainer.validated_step != trainer.step:
        validation_round(trainer, clips, sets, step_time / max(steps_timed, 1))
    dist.barrier()
    if bar is not None:
        bar.close()
    return status


def progress_bar(trainer: Trainer):
    if not (trainer.dist.is_main and trainer.tc.progress):
        return None
    from tqdm import tqdm

    return tqdm(
        total=trainer.planned_steps,
        initial=trainer.step,
        unit="step",
        dynamic_ncols=True,
        desc="train",
        file=sys.stderr,
        mininterval=1.0,
    )


def postfix(trainer: Trainer, ema: float) -> str:
    parts = [f"loss {ema:.4f}", f"lr {trainer.sched.get_last_lr()[0]:.1e}"]
    m = trainer.metrics
    for name, values in m.items():
        at = f"miss@{trainer.tc.select_fa_per_hour:g}"
        parts.append(f"{name} {at} {values.get(at, float('nan')):.3f}")
    return ", ".join(parts)


def _set_figures(name: str, r: SetResult) -> str:
    """One evaluation set's part of the validation log line."""
    line = f"{name} miss@0.5 {r.miss_at(0.5):.3f} miss@0.1 {r.miss_at(0.1):.3f}"
    line += f" ({r.curve.negative_hours:.2f} neg h)"
    if r.frame_loss is not None:
        line += f" loss {r.frame_loss:.4f}"
    if r.transfer:
        line += f" at synthetic thr: miss {r.transfer['miss']:.3f} FA/h {r.transfer['fa_per_hour']:.2f}"
    return line


def validation_round(trainer: Trainer, clips, sets: list[EvalSet], step_s: float) -> None:
    """Score the evaluation sets (rank 0), plan the run if not yet done, save last/best, redraw
    the plots and the report. ``step_s``: measured seconds per training step."""
    tc, dist = trainer.tc, trainer.dist
    t0 = time.monotonic()
    budgeted = bool(tc.max_minutes)
    trainer.validated_step = trainer.step  # on every replica: they must agree on the next collective
    if dist.is_main:
        from train import plots, report

        results = validate(
            trainer.model,
            sets,
            trainer.params,
            trainer.device,
            reference=tc.select_set,
            reference_fa_per_hour=tc.select_fa_per_hour,
        )
        if tc.mining_fraction > 0:
            pool = pool_for(len(trainer.history["val"]), len(clips), tc.mining_pool, tc.seed)
            trainer.hard = mine(trainer.model, clips, pool, trainer.params, trainer.device, tc.mining_min_prob)
            log.info(
                "hard negatives: %d of %d scored clips reach p >= %g", len(trainer.hard), len(pool), tc.mining_min_prob
            )
        if budgeted:
            trainer.plan(step_s, max(time.monotonic() - t0, trainer.last_val_s))
        record(trainer, results)
        value = results[tc.select_set].miss_at(tc.select_fa_per_hour)
        best = tc.select == "last" or trainer.best["value"] is None or value <= trainer.best["value"]
        if best:
            trainer.best = {**trainer.best, "value": value, "step": trainer.step}
        trainer.tick()
        trainer.save("last.pt")
        if best:
            trainer.save("best.pt")
        log.info(
            "step %d: %s%s",
            trainer.step,
            "; ".join(_set_figures(name, r) for name, r in results.items()),
            " (best)" if best else "",
        )
        if tc.plots:
            plots.draw_all(trainer.out_dir, trainer.history, results, sets, trainer.params, tc.plot_examples)
        report.write(trainer.out_dir / "report.md", trainer, results)
        trainer.last_val_s = time.monotonic() - t0  # the whole round: next plan's estimate
    if budgeted:
        trainer.planned_steps = dist.broadcast_int(trainer.planned_steps)
    if tc.mining_fraction > 0:
        trainer.hard = HardSet.from_dict(dist.broadcast_object(trainer.hard.to_dict()))
    dist.barrier()


def record(trainer: Trainer, results: dict[str, SetResult]) -> None:
    """Validation results into the trainer's metrics (checkpoint) and history (plots, report)."""
    trainer.metrics = {name: r.summary() for name, r in results.items()}
    trainer.history["val"].append(
        {"step": trainer.step, **{f"{name}/{k}": v for name, vals in trainer.metrics.items() for k, v in vals.items()}}
    )


if __name__ == "__main__":
    sys.exit(main())
