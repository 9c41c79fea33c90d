"""``python -m bench --keyword K --build build/K [--quick] [--peers] [--config F]... [--set k=v]...`` (``make bench``).

Writes ``<build>/bench/{report.md, report.json, det.png, latency.png, config.json}``; the test
audio is cached in ``<build>/bench/streams/``, the daemon's logs of every run in
``<build>/bench/run/``; peers' virtual environments live in ``build/peers/``. Expected
failures (no model, no test audio, a daemon run that fails, a bad config) print one line and
exit 1.
"""

from __future__ import annotations

import argparse
import logging
import platform
import shlex
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("bench")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from train import stagecli

    ap = stagecli.parser("python -m bench", __doc__.splitlines()[0])
    ap.add_argument("--peers", action="store_true", help="also run other engines (installs them under build/peers/)")
    ap.add_argument(
        "--model",
        type=Path,
        help="benchmark this model file instead of <build>/model.onnx "
        "(and its model.int8.onnx sibling, if any); the test audio still comes from --build",
    )
    ap.add_argument("--out", type=Path, help="report folder (default <build>/bench)")
    ap.add_argument("-v", "--verbose", action="store_true")
    return ap.parse_args(argv)


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {"python": platform.python_version(), "machine": f"{platform.machine()} {platform.system()}"}
    for pkg in ("wakeword", "numpy", "onnxruntime", "torch"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=10,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent,
            timeout=10,
        ).stdout.strip()
        if rev.returncode == 0:
            out["git"] = rev.stdout.strip() + (" (uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    from train import stagecli

    stagecli.setup_logging(args.verbose)
    from bench.daemon import DaemonError
    from bench.peers import PeerError
    from bench.pipeline import BenchError

    command = "python -m bench " + shlex.join(argv)
    return stagecli.run(
        "bench",
        lambda: _run(args, command),
        (BenchError, DaemonError, PeerError),
        "cached test audio is kept; no report written",
    )


def _run(args: argparse.Namespace, command: str) -> int:
    from bench import report
    from bench.config import BenchConfig
    from bench.pipeline import find_models, run
    from train import config, stagecli

    cfg = stagecli.load_config(args)
    bc = config.section(cfg, "bench", BenchConfig)
    models = find_models(args.model.parent, bc, args.model.name) if args.model else None
    out_dir = args.out or args.build / "bench"
    result = run(args.keyword, args.build, cfg, bc, peers=args.peers, models=models, run_dir=out_dir / "run")
    result["versions"] = {**versions(), **{f"model {k}": v for k, v in (result["model"]["versions"] or {}).items()}}
    config.dump_json(cfg, out_dir / "config.json")
    path = report.write(result, out_dir, command)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
