"""``python -m export --keyword K --build build/K [--quick] [--config F]... [--set k=v]...`` (``make export``).

Reads ``<build>/train/best.pt``; writes ``<build>/model.onnx`` (+ ``model.int8.onnx`` when kept)
and ``<build>/export/{report.md, report.json, det.png, config.json}``. Expected failures (no or
bad checkpoint, bad config, missing calibration audio, parity failure) print one line and exit 1;
the previous model.onnx is then untouched.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path

log = logging.getLogger("export")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m export", description=(
        "Export <build>/train/best.pt to <build>/model.onnx: a streaming ONNX model with calibrated "
        "thresholds in its metadata, plus <build>/export/report.md (make export)."))
    ap.add_argument("--keyword", required=True, help="the keyword the checkpoint was trained for")
    ap.add_argument("--build", required=True, type=Path, help="build folder of the keyword, e.g. build/computer")
    ap.add_argument("--quick", action="store_true", help="layer configs/quick.toml (smoke runs)")
    ap.add_argument("--config", action="append", default=[], help="extra TOML layer (repeatable)")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE",
                    help="override one config value (repeatable)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    from device.modelmeta import ModelMetaError
    from device.params import ParamsError
    from export.calib_streams import CalibrationDataError
    from export.parity import ParityError
    from export.source import CheckpointError
    from train import config

    expected = (CheckpointError, config.ConfigError, CalibrationDataError, ParityError, ModelMetaError, ParamsError)
    try:
        return _run(args, "python -m export " + " ".join(shlex.quote(a) for a in argv))
    except expected as exc:
        print(f"export: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("export: interrupted; model.onnx unchanged", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, command: str) -> int:
    import torch

    from export.config import ExportConfig
    from export.pipeline import run, save_config
    from export.report import write_report
    from train import config

    cfg = config.load(args.config, args.overrides, quick=args.quick)
    xc = config.section(cfg, "export", ExportConfig)
    torch.set_num_threads(1)  # tracing and the parity reference are small; the machine is shared
    result = run(args.keyword, args.build, cfg, xc)
    save_config(cfg, args.build / "export")
    report = write_report(result, args.build / "export", command)
    cal = result.calibration
    print(f"wrote {result.model_path} (threshold {result.meta.threshold:.4f} at {cal.config.target_fa_per_hour:g} "
          f"FA/h on {cal.basis_hours:.2f} h of {' + '.join(cal.to_meta()['basis'])}, "
          f"miss rate {cal.points[0].miss_rate:.1%}); report {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
