"""``make finetune``: the shipped model, fine-tuned on the user's own audio, in minutes.

    python -m train.finetune --keyword K --build build/K [--out build/K-ft] [--quick] [--config F]... [--set k=v]...

After ``make record`` (your takes of the keyword), ``make collect`` + ``make label`` (the Pi's
saved detections, marked true or false accepts), this starts from ``<build>/train/best.pt``
(``[train] init_from``) and trains ``configs/finetune.toml``'s short schedule on the same
synthetic recipe plus ``recordings/<keyword>/``, which ``[data] recording_share`` draws often
enough to matter. The result is a new build folder (``<build>-ft``), exported, so the model
on the Pi now and the new one can be benchmarked side by side before ``make deploy
MODEL=<build>-ft/model.onnx``. The base build is never written to: its TTS renders, rooms,
dataset and evaluation streams are shared by hard links, so only the clips holding the user's
audio are mixed again.

Every stage is the ordinary one (``train.dataset``, ``train.train``, ``export``) and resumes
the ordinary way: an interrupted fine-tune picks up from its own ``last.pt``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

from train import checkpoint, config, stagecli
from train.stagecli import stage_opts

log = logging.getLogger("train.finetune")

REPO = Path(__file__).resolve().parents[1]
FINETUNE_FILE = config.CONFIG_DIR / "finetune.toml"
SHARED_PARTS = ("sources", "rooms", "dataset", "streams")
"""What a fine-tune build borrows from its base (hard links: the base stays as it was)."""


class StageFailed(RuntimeError):
    """A pipeline stage exited non-zero (it printed its own message)."""


def run_stage(module: str, opts: list[str]) -> None:
    cmd = [sys.executable, "-m", module, *opts]
    log.info("$ %s", " ".join(cmd))
    done = subprocess.run(cmd, cwd=REPO)
    if done.returncode:
        raise StageFailed(f"{module} failed (exit {done.returncode}); fix it and run again, finished stages are kept")


def borrow(base: Path, out: Path) -> None:
    """Hard-link the base build's reusable parts into ``out`` (once; never the other way)."""
    out.mkdir(parents=True, exist_ok=True)
    for part in SHARED_PARTS:
        if (base / part).exists() and not (out / part).exists():
            if subprocess.run(["cp", "-al", str(base / part), str(out / part)], capture_output=True).returncode:
                shutil.rmtree(out / part, ignore_errors=True)  # another file system: copy instead
                log.info("copying %s to %s (no hard links across file systems)", base / part, out / part)
                shutil.copytree(base / part, out / part)


def base_model(init: Path) -> list[str]:
    """The base checkpoint's ``[model]`` as overrides: a fine-tune has the shape of the model it
    starts from (e.g. one head, from before two became the default), whatever the defaults say now."""
    from train.model import ModelConfig

    mc = ModelConfig.from_dict(checkpoint.load(init).get("model_config") or {})
    return [f"model.{k}={v}" for k, v in mc.to_dict().items() if k != "embed_dim"]


def finetune(
    keyword: str,
    base: Path,
    out: Path,
    *,
    quick: bool = False,
    configs: list[str] | None = None,
    overrides: list[str] | None = None,
) -> Path:
    """Dataset, fine-tune from ``base``'s best checkpoint, export -> ``out/model.onnx``."""
    init = base / "train" / "best.pt"
    if not init.is_file():
        raise StageFailed(f"no {init}: train the base model first (`make train export`)")
    if out.resolve() == base.resolve():
        raise StageFailed("the fine-tune needs its own build folder (--out), not the base's")
    try:
        shape = base_model(init)
    except checkpoint.CheckpointError as exc:  # one line for every caller (make loop runs two of these)
        raise StageFailed(str(exc)) from None
    borrow(base, out)
    opts = stage_opts(
        keyword,
        out,
        quick=quick,
        configs=[str(FINETUNE_FILE), *(configs or [])],
        overrides=[f"train.init_from={init.resolve()}", *shape, *(overrides or [])],
    )
    model = out / "model.onnx"
    run_stage("train.dataset", opts)
    run_stage("train.train", opts)
    run_stage("export", opts)
    return model


def main(argv: list[str] | None = None) -> int:
    ap = stagecli.parser(
        "python -m train.finetune", __doc__.splitlines()[0], "the base build (trained), e.g. build/computer"
    )
    ap.add_argument("--out", type=Path, help="the fine-tune's build folder (default <build>-ft)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    out = args.out or args.build.with_name(args.build.name + "-ft")

    def body() -> int:
        stagecli.load_config(args)  # a bad configuration stops here, before any stage runs
        model = finetune(args.keyword, args.build, out, quick=args.quick, configs=args.config, overrides=args.overrides)
        print(f"fine-tuned model: {model} (deploy it with `make deploy MODEL={model}`)")
        return 0

    return stagecli.run(
        "finetune",
        body,
        (StageFailed, checkpoint.CheckpointError),
        f"run it again to go on ({out}/train/last.pt keeps the steps done)",
    )


if __name__ == "__main__":
    sys.exit(main())
