"""``python -m export --keyword K --build build/K [--quick] [--config F]... [--set k=v]...`` (``make export``).

Reads ``<build>/train/best.pt``; writes ``<build>/model.onnx`` (+ ``model.int8.onnx`` when kept)
and ``<build>/export/{report.md, report.json, det.png, config.json}``. Expected failures print one
line and exit with the stages' statuses (``train.stagecli``: 2 a bad config; 1 no or a bad checkpoint,
missing calibration audio, a parity failure); the previous model.onnx is then untouched.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

log = logging.getLogger("export")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from train import stagecli

    ap = stagecli.parser(
        "python -m export",
        (
            "Export <build>/train/best.pt to <build>/model.onnx: a streaming ONNX model with calibrated "
            "thresholds in its metadata, plus <build>/export/report.md (make export)."
        ),
    )
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    from train import stagecli

    stagecli.setup_logging(args.verbose)
    from device.modelmeta import ModelMetaError
    from device.params import ParamsError
    from export.calib_streams import CalibrationDataError
    from export.parity import ParityError
    from export.source import CheckpointError

    return stagecli.run(
        "export",
        lambda: _run(args, "python -m export " + shlex.join(argv)),
        (CheckpointError, CalibrationDataError, ParityError, ModelMetaError, ParamsError),
        "model.onnx unchanged",
    )


def _run(args: argparse.Namespace, command: str) -> int:
    import torch

    from export.config import ExportConfig
    from export.pipeline import run, save_config
    from export.report import write_report
    from train import config, stagecli

    cfg = stagecli.load_config(args)
    xc = config.section(cfg, "export", ExportConfig)
    torch.set_num_threads(1)  # tracing and the parity reference are small; the machine is shared
    result = run(args.keyword, args.build, cfg, xc)
    save_config(cfg, args.build / "export")
    report = write_report(result, args.build / "export", command)
    cal = result.calibration
    print(
        f"wrote {result.model_path} (threshold {result.meta.threshold:.4f} at {cal.config.target_fa_per_hour:g} "
        f"FA/h on {cal.basis_hours:.2f} h of {' + '.join(cal.to_meta()['basis'])}, "
        f"miss rate {cal.points[0].miss_rate:.1%}); report {report}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
