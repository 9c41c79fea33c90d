"""``make pair``: a second run of a trained keyword, and the two combined and exported as one model.

    python -m train.pair --keyword K --build build/K [--quick] [--config F]... [--set k=v]...

After ``make train`` (``build/K``), this trains the same recipe again with the next seed in
``build/K-s2`` (the base's renders, rooms, dataset and evaluation streams borrowed by hard link,
so only the training runs again), combines the two runs' heads (:mod:`train.combine`) into
``build/K-pair`` and exports it: ``build/K-pair/model.onnx``, one model that answers with the mean
of the two heads, for one front end's cost on the Pi. Measured (docs/experiments.md, "two runs
combined"): fewer real keywords missed at 0.5 false accepts per hour than either run's average.
Every stage is the ordinary one and resumes the ordinary way.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from train import checkpoint, stagecli
from train.combine import CombineError, combine_builds
from train.finetune import StageFailed, borrow, run_stage

log = logging.getLogger("train.pair")


def base_seed(base: Path) -> int:
    """The ``[train] seed`` the base run was trained with (1 when it does not say)."""
    state = checkpoint.load(base / "train" / "best.pt")
    return int(((state.get("config") or {}).get("train") or {}).get("seed", 1))


def pair(
    keyword: str,
    base: Path,
    *,
    quick: bool = False,
    configs: list[str] | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """Second run, combination, export -> ``<base>-pair/model.onnx``."""
    if not (base / "train" / "best.pt").is_file():
        raise StageFailed(f"no {base}/train/best.pt: train the keyword first (`make train`)")
    second, out = base.with_name(base.name + "-s2"), base.with_name(base.name + "-pair")
    seed = base_seed(base) + 1
    borrow(base, second)
    opts = stagecli.stage_opts(
        keyword, second, quick=quick, configs=configs or [], overrides=[*(overrides or []), f"train.seed={seed}"]
    )
    run_stage("train.dataset", opts)
    run_stage("train.train", opts)
    combine_builds(keyword, [base, second], out)
    run_stage(
        "export", stagecli.stage_opts(keyword, out, quick=quick, configs=configs or [], overrides=overrides or [])
    )
    return out / "model.onnx"


def main(argv: list[str] | None = None) -> int:
    ap = stagecli.parser("python -m train.pair", __doc__.splitlines()[0], "the trained build, e.g. build/computer")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def body() -> int:
        stagecli.load_config(args)
        model = pair(args.keyword, args.build, quick=args.quick, configs=args.config, overrides=args.overrides)
        print(f"paired model: {model} (deploy it with `make deploy MODEL={model}`)")
        return 0

    return stagecli.run(
        "pair",
        body,
        (StageFailed, CombineError, checkpoint.CheckpointError, OSError),
        "finished stages are kept; run it again to go on",
    )


if __name__ == "__main__":
    sys.exit(main())
