"""The command line every pipeline stage shares, in one place.

Every stage (``train.dataset``, ``train.train``, ``train.evaluate``, ``train.finetune``,
``train.combine``, ``export``, ``bench``, ``bench.fieldloop``) takes ``--keyword K --build DIR [--quick] [--config F]...
[--set SECTION.KEY=VALUE]...`` (:func:`parser`), loads its configuration the same way
(:func:`load_config`) and ends with one of these exit statuses (:func:`run`; README "Exit statuses"):

- 0: done;
- 1: the stage could not do its work with what it was given (no dataset or checkpoint yet, a
  damaged file, a failed check); the message says what to do;
- 2: a bad command line or configuration (a key, a type, a value out of range);
- 130: interrupted (Ctrl-C, SIGTERM); finished work is kept and a second run goes on from it.

The Makefile reaches the stages through ``scripts/stage.sh``, which runs ``python -m
train.stagecli MODULE`` (:func:`main`): the options come from the environment the Makefile exports
(``KEYWORD``, ``BUILD``, ``QUICK``, ``CONFIG``, ``SET``, ``NPROC``) through :func:`stage_opts`, the
one place stage options are built, never from text pasted into a shell line.
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def parser(
    prog: str, description: str, build_help: str = "build folder of the keyword, e.g. build/computer"
) -> argparse.ArgumentParser:
    """An argument parser with the options every stage understands (add the stage's own after)."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("--keyword", required=True, help="the keyword, e.g. computer")
    ap.add_argument("--build", required=True, type=Path, help=build_help)
    ap.add_argument("--quick", action="store_true", help="layer configs/quick.toml (a small run in minutes)")
    ap.add_argument("--config", action="append", default=[], help="extra TOML layer (repeatable)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        dest="overrides",
        metavar="SECTION.KEY=VALUE",
        help="override one config value (repeatable)",
    )
    return ap


def load_config(args: argparse.Namespace) -> dict:
    """defaults < ``--quick`` < ``--config`` layers < ``--set`` (:func:`train.config.load`)."""
    from train import config

    return config.load(args.config, args.overrides, quick=args.quick)


def setup_logging(verbose: bool = False) -> None:
    """The stages' log lines on stderr, ``HH:MM:SS logger: message``: INFO and up, DEBUG too when ``verbose``."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO})
"""Errors of the disk rather than of the work: a stage stops with one line, what it finished kept
(every stage writes a temp file and renames it, so nothing is half written)."""


def run(
    name: str,
    body: Callable[[], int | None],
    failures: tuple[type[BaseException], ...] = (),
    interrupted: str = "finished work is kept; run it again to go on",
) -> int:
    """``body()`` -> its exit status; a configuration error, one of ``failures``, a full or
    read-only disk (:data:`DISK_ERRNOS`) or an interrupt becomes one line on stderr
    (``<name>: error: ...``) and its exit status."""
    from train.config import ConfigError

    try:
        return body() or EXIT_OK
    except ConfigError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except failures as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as exc:
        if exc.errno not in DISK_ERRNOS:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(
            f"{name}: error: cannot write{where}: {exc.strerror or exc}; {interrupted} once there is room",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{name}: interrupted; {interrupted}", file=sys.stderr)
        return EXIT_INTERRUPTED


def stage_opts(
    keyword: str,
    build: str | os.PathLike,
    *,
    quick: bool = False,
    configs: Iterable[str] = (),
    overrides: Iterable[str] = (),
) -> list[str]:
    """The options every stage understands, as an argument list."""
    opts = ["--keyword", keyword, "--build", str(build)] + (["--quick"] if quick else [])
    for c in configs:
        opts += ["--config", str(c)]
    for o in overrides:
        opts += ["--set", o]
    return opts


def command(module: str, extra: list[str], env: dict[str, str]) -> list[str]:
    """The command ``scripts/stage.sh MODULE EXTRA...`` runs, from the Makefile's environment.
    ``CONFIG`` and ``SET`` are whitespace-separated lists (``SET="train.lr=0.01 data.seed=2"``)."""
    keyword = env.get("KEYWORD") or "computer"
    nproc = env.get("NPROC") or "1"
    if not nproc.isdigit() or int(nproc) < 1:
        raise ValueError(f"NPROC must be a whole number >= 1 (got {nproc!r})")
    opts = stage_opts(
        keyword,
        env.get("BUILD") or f"build/{keyword}",
        quick=bool(env.get("QUICK")),
        configs=env.get("CONFIG", "").split(),
        overrides=env.get("SET", "").split(),
    )
    if int(nproc) > 1:
        torchrun = str(Path(sys.executable).with_name("torchrun"))
        return [torchrun, "--standalone", f"--nproc-per-node={int(nproc)}", "-m", module, *opts, *extra]
    return [sys.executable, "-m", module, *opts, *extra]


def main(argv: list[str] | None = None) -> int:
    import shlex

    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print("usage: python -m train.stagecli MODULE [ARGS...]", file=sys.stderr)
        return EXIT_USAGE
    try:
        cmd = command(argv[0], argv[1:], dict(os.environ))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    print(shlex.join(cmd), file=sys.stderr, flush=True)
    os.execv(cmd[0], cmd)
    return EXIT_FAILED  # not reached


if __name__ == "__main__":
    sys.exit(main())
