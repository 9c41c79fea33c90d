"""Several trained runs of one keyword as one model: their heads answering together (:func:`train.model.fuse`).

    python -m train.combine --keyword K --build build/K-ens --from build/K --from build/K-s2

Each ``--from`` build holds a finished ``train/best.pt`` of the same keyword, audio numbers, front
end and ``[model]`` (seeds differ: with the default two heads per run, ``--set train.seed=3`` for the
second, so no head repeats another). ``make train`` already trains ``[model] heads`` runs in one
model; this is for runs trained apart (other data draws, other machines). The result is an ordinary build whose
``train/best.pt`` is a :class:`train.model.Heads` over all of their heads (``[model] heads`` = the
total), with the first build's dataset, renders and evaluation streams borrowed by hard links, so
``make export BUILD=build/K-ens`` calibrates and exports it like any other; the device runs it
unchanged (the front end once, the small heads side by side). Measured on the four real keywords
of ``../shared/data`` (docs/experiments.md): two seeds combined missed fewer real keywords at
0.5 false accepts per hour than the mean of the two alone on three keywords of four.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from train import checkpoint, stagecli
from train.finetune import borrow
from train.model import combine

log = logging.getLogger("train.combine")


class CombineError(ValueError):
    """Runs that cannot be combined (one line: which and why)."""


def combine_builds(keyword: str, sources: list[Path], out: Path) -> Path:
    """Write ``out/train/best.pt`` from the ``best.pt`` of each of ``sources``; returns its path."""
    if len(sources) < 2:
        raise CombineError("give at least two --from builds to combine")
    if any(s.resolve() == out.resolve() for s in sources):
        raise CombineError(f"{out} is one of the --from builds: combine into a build folder of its own")
    states = []
    for s in sources:
        state = checkpoint.load(s / "train" / "best.pt")
        if state.get("keyword") != keyword:
            raise CombineError(f"{s}/train/best.pt is for keyword {state.get('keyword')!r}, not {keyword!r}")
        states.append(state)
    first = states[0]
    for s, state in zip(sources[1:], states[1:]):
        if state.get("audio_params") != first.get("audio_params"):
            raise CombineError(f"{s} was trained with other [audio] numbers or another front end than {sources[0]}")
    try:
        mc, weights = combine(states)
    except ValueError as exc:
        raise CombineError(f"{', '.join(map(str, sources))}: {exc}") from None
    borrow(sources[0], out)
    config = {**(first.get("config") or {})}
    config["model"] = {**(config.get("model") or {}), "heads": mc.heads}
    state = {
        **first,
        "model_config": mc.to_dict(),
        "model": weights,
        "config": config,
        "optimizer": {},
        "scheduler": {},
        "combined_from": [
            {
                "build": str(s),
                "step": int(st.get("step", 0)),
                "seed": ((st.get("config") or {}).get("train") or {}).get("seed"),
            }
            for s, st in zip(sources, states)
        ],
    }
    path = checkpoint.save(out / "train" / "best.pt", state)
    log.info("combined %d runs (%d heads) into %s", len(sources), mc.heads, path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = stagecli.parser("python -m train.combine", __doc__.splitlines()[0], "the combined build folder (new)")
    ap.add_argument(
        "--from",
        dest="sources",
        action="append",
        type=Path,
        default=[],
        required=True,
        help="a trained build of the same keyword (repeat: at least two)",
    )
    args = ap.parse_args(argv)
    stagecli.setup_logging()

    def body() -> int:
        stagecli.load_config(args)
        path = combine_builds(args.keyword, args.sources, args.build)
        print(f"combined model: {path} (export it with `make export BUILD={args.build}`)")
        return 0

    return stagecli.run("combine", body, (CombineError, checkpoint.CheckpointError, OSError))


if __name__ == "__main__":
    sys.exit(main())
