"""Score a checkpoint on the evaluation sets training validates on, and print the table.

    python -m train.evaluate --keyword computer --build build/computer [--checkpoint PATH]... [--split val]
                             [--real-calibration-share S] [--threshold T] [--config F]... [--set k=v]...

The same sets and figures as a validation during training (``train/evalsets.py``,
``train/validate.py``): the dataset's ``val`` (or ``test``) split and, when ``../shared/data``
is present, the real recordings clean and at ``[streams] snr_db``.

``--real-calibration-share S`` measures what export's ``[export] shared_calibration_share = S``
buys: those ../shared/data speakers' non-keyword speech (clean and at ``snr_db``) becomes a
``real_calibration`` set, left out of the real sets, and the held-out real sets are shown at the
0.5 FA/h thresholds chosen on the synthetic voices alone, on the real speakers alone, and on both
pooled (``[export] real_basis``).
``--checkpoint`` given several times scores them together (separately trained
runs as one :class:`train.model.Heads`, what ``[model] heads`` trains in one run).
``--threshold T`` also shows every set at a threshold of your own (e.g. the one ``make export``
stored in ``model.onnx``: its report names it).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import torch

from device.params import AudioParams
from train import checkpoint, config, evalsets, stagecli
from train.model import ModelConfig, combine, make_head
from train.report import metrics_table
from train.streams import StreamConfig
from train.validate import validate


def main(argv: list[str] | None = None) -> int:
    p = stagecli.parser("python -m train.evaluate", __doc__.split("\n")[0])
    p.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        help="default: <build>/train/best.pt; given more than once, the mean of their heads",
    )
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--real-calibration-share", type=float, default=0.0, metavar="S")
    p.add_argument("--threshold", type=float, metavar="T", help="also show every set at this threshold")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if args.threshold is not None and not 0 < args.threshold < 1:
        p.error("--threshold must be in (0, 1)")
    if not 0 <= args.real_calibration_share <= 1:
        p.error("--real-calibration-share must be in [0, 1]")
    return stagecli.run("evaluate", lambda: _evaluate(args), (checkpoint.CheckpointError, ValueError, OSError))


def _evaluate(args) -> int:
    from train.dataset import open_split

    build = args.build
    cfg = stagecli.load_config(args)
    states = [checkpoint.load(p) for p in args.checkpoint or [build / "train" / "best.pt"]]
    state = states[0]
    if any(s["audio_params"] != state["audio_params"] or s["keyword"] != state["keyword"] for s in states):
        raise ValueError("the checkpoints are of different keywords or audio parameters")
    mc, weights = combine(states) if len(states) > 1 else (ModelConfig.from_dict(state["model_config"]), state["model"])
    params = AudioParams.from_dict(state["audio_params"])
    model = make_head(mc)
    model.load_state_dict(weights)
    streams_cfg = config.section(cfg, "streams", StreamConfig)
    real_data = cfg.get("train", {}).get("real_data", "auto")
    val = open_split(build / "dataset", args.split)
    calibration = _real_calibration(args, val, params, streams_cfg, real_data, build)
    sets = evalsets.build(
        val,
        params,
        streams_cfg,
        real_data,
        build / "streams",
        args.keyword,
        also_exclude=calibration[1] if calibration else (),
    )
    torch.set_num_threads(1)
    sets[0].name = "synthetic" if args.split == "val" else "synthetic_test"
    if calibration:
        sets.append(calibration[0])
    results = validate(model, sets, params, torch.device("cpu"), reference=sets[0].name)
    print(f"checkpoint step {state['step']}:")
    print("\n".join(metrics_table({name: r.summary() for name, r in results.items()})))
    if calibration:
        _compare_bases(results, sets[0].name, calibration)
    if args.threshold is not None:
        from device.decision import DecisionConfig
        from train.metrics import evaluate

        print(f"\nat threshold {args.threshold:.4f}:")
        for name, r in results.items():
            o = evaluate(r.streams, DecisionConfig(args.threshold))
            print(
                f"  {name:16s} miss {o.miss_rate:.3f} FA/h {o.fa_per_hour:.2f} "
                f"({o.false_accepts} in {o.negative_hours:.2f} h)"
            )
    return 0


def _compare_bases(results: dict, synthetic: str, calibration) -> None:
    """Each held-out real set at the 0.5 FA/h threshold chosen on: the synthetic set alone, the
    real calibration speakers alone, and both pooled (what ``[export] real_basis`` chooses between)."""
    from device.decision import DecisionConfig
    from train.metrics import det_curve, evaluate

    real = results[calibration[0].name]
    pooled = [st for st in results[synthetic].streams if not st.keyword_spans] + real.streams
    thresholds = {
        "synthetic alone": results[synthetic].curve.at_fa(0.5)[0],
        "real alone": real.curve.at_fa(0.5)[0],
        "pooled": det_curve(pooled).at_fa(0.5)[0],
    }
    print(
        f"\nthresholds for 0.5 FA/h chosen on {synthetic}, on {calibration[0].name} ({len(calibration[1])} "
        f"speakers, {real.curve.negative_hours:.2f} h), "
        "and on both pooled; miss, FA/h on the held-out real sets:"
    )
    for basis, thr in thresholds.items():
        figures = []
        for name, r in results.items():
            if name.startswith("real_") and name != calibration[0].name:
                o = evaluate(r.streams, DecisionConfig(min(thr, 1 - 1e-9)))
                figures.append(f"{name} {o.miss_rate:.3f}, {o.fa_per_hour:.2f}")
        print(f"  {basis:16s} thr {thr:.4f}: " + " | ".join(figures))


def _real_calibration(args, val, params, streams_cfg, real_data: str, build: Path):
    """(negatives-only EvalSet of the calibration speakers, those speakers), or None."""
    from train import realdata
    from train.validate import from_streams

    if args.real_calibration_share <= 0 or real_data == "off":
        return None
    root = realdata.locate() if real_data == "auto" else Path(real_data)
    clips, speakers = realdata.calibration_negatives(
        args.real_calibration_share, args.keyword, evalsets.trained_speakers(val), root
    )
    if not clips:
        raise ValueError("no ../shared/data negatives to calibrate on")
    files = evalsets.RealFiles([], sorted(c.path for c in clips), sorted(c.path for c in realdata.noise_clips(root)))
    streams = [
        s for group in evalsets.real_streams(files, params, streams_cfg, build / "streams").values() for s in group
    ]
    return from_streams(streams, params, "real_calibration", build / "streams"), speakers


if __name__ == "__main__":
    sys.exit(main())
