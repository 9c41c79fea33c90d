"""Score a checkpoint on the evaluation sets training validates on, and print the table.

    python -m train.evaluate --keyword computer --build build/computer [--checkpoint PATH] [--split val]
                             [--config F]... [--set k=v]...

The same sets and figures as a validation during training (``train/evalsets.py``,
``train/validate.py``): the dataset's ``val`` (or ``test``) split and, when ``../shared/data``
is present, the real recordings clean and at ``[streams] snr_db``.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from device.params import AudioParams
from train import checkpoint, config, evalsets
from train.model import Head, ModelConfig
from train.report import metrics_table
from train.streams import StreamConfig
from train.validate import validate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--keyword", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--checkpoint", help="default: <build>/train/best.pt")
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--quick", action="store_true")
    p.add_argument("--config", action="append", default=[])
    p.add_argument("--set", action="append", default=[], dest="overrides")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    build = Path(args.build)
    try:
        cfg = config.load(args.config, args.overrides, quick=args.quick)
        state = checkpoint.load(args.checkpoint or build / "train" / "best.pt")
        from train.dataset import open_split

        params = AudioParams.from_dict(state["audio_params"])
        model = Head(ModelConfig(**state["model_config"]))
        model.load_state_dict(state["model"])
        sets = evalsets.build(open_split(build / "dataset", args.split), params,
                              config.section(cfg, "streams", StreamConfig),
                              cfg.get("train", {}).get("real_data", "auto"), build / "streams", args.keyword)
    except (config.ConfigError, checkpoint.CheckpointError, ValueError, OSError) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    sets[0].name = "synthetic" if args.split == "val" else "synthetic_test"
    results = validate(model, sets, params, torch.device("cpu"), reference=sets[0].name)
    print(f"checkpoint step {state['step']}:")
    print("\n".join(metrics_table({name: r.summary() for name, r in results.items()})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
