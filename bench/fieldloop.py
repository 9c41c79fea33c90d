"""One turn of the field loop, measured: the Pi's false accepts go back into training.

``make loop`` (``python -m bench.fieldloop --keyword computer --build build/computer``) plays the
part of a household without a Pi, using the real recordings of ``../shared/data``:

1. **field**: the real non-keyword speech of some speakers (``--field-speakers``; the "household")
   is played through the daemon (``wakeword listen --input``, the program a Pi runs), clean and
   in real recorded noise, with ``[save]`` on, as a Pi collecting for review does. Collection runs
   at a lower ``--review-threshold`` than the shipped one, so that an hour of audio yields
   something to review (on a Pi: ``[detect] threshold`` in ``/etc/wakeword/config.toml`` for a
   few days of collection).
2. **review**: every saved clip is labelled a false accept (the field audio holds no keyword, so
   this is what a person marks in ``make label``), then placed under
   ``<loop>/recordings/<keyword>/field/`` as ``make collect`` would.
3. **retrain**: ``make data`` + ``make train`` + ``make export`` into ``<loop>`` (``--loop-build``)
   with those recordings, and the *same number of steps* as the first model (time budgets would
   let machine load decide), reusing the first build's TTS renders and rooms.
4. **bench**: ``make bench`` of both models on the same test audio, the household's speakers left
   out of the real negatives (``bench.real_negative_exclude_speakers``): what the loop changed on
   voices neither model trained on. ``<loop>/loop-report.md`` puts the two side by side.

Each stage is skipped when its output exists, so an interrupted run picks up where it stopped.
"""
from __future__ import annotations

import argparse
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path

log = logging.getLogger("bench.fieldloop")

REPO = Path(__file__).resolve().parents[1]
DEFAULT_FIELD = ("george", "lucas", "theo")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m bench.fieldloop", description=__doc__.splitlines()[0])
    ap.add_argument("--keyword", required=True)
    ap.add_argument("--build", required=True, type=Path, help="the first model's build folder (trained, exported)")
    ap.add_argument("--loop-build", type=Path, help="the retrained model's build folder (default <build>-loop)")
    ap.add_argument("--field-speakers", default=",".join(DEFAULT_FIELD),
                    help="speakers of ../shared/data whose non-keyword speech is the household (comma-separated)")
    ap.add_argument("--review-threshold", type=float, default=0.1,
                    help="threshold the daemon collects at (the shipped one stays in the model)")
    ap.add_argument("--quick", action="store_true", help="layer configs/quick.toml on every stage")
    ap.add_argument("--config", action="append", default=[], help="extra TOML layer for every stage (repeatable)")
    ap.add_argument("--set", action="append", default=[], dest="overrides", metavar="SECTION.KEY=VALUE")
    args = ap.parse_args(argv)
    args.field_speakers = tuple(s.strip() for s in args.field_speakers.split(",") if s.strip())
    args.loop_build = args.loop_build or args.build.with_name(args.build.name + "-loop")
    if not 0 < args.review_threshold < 1:
        ap.error("--review-threshold must lie in (0, 1)")
    return args


def _stage_opts(args, build: Path, *extra: str) -> list[str]:
    opts = ["--keyword", args.keyword, "--build", str(build)] + (["--quick"] if args.quick else [])
    for c in args.config:
        opts += ["--config", c]
    for o in list(args.overrides) + list(extra):
        opts += ["--set", o]
    return opts


def _run(module: str, opts: list[str]) -> None:
    cmd = [sys.executable, "-m", module, *opts]
    log.info("$ %s", " ".join(cmd))
    done = subprocess.run(cmd, cwd=REPO)
    if done.returncode:
        raise SystemExit(f"fieldloop: {module} failed (exit {done.returncode}); fix it and re-run, finished stages are kept")


def field_audio(args, out: Path) -> list[Path]:
    """The household's speech as two WAVs (clean, and in real noise at the streams' SNR)."""
    import numpy as np

    from device.params import AudioParams
    from train import config, realdata
    from train.audio_io import write_wav
    from train.evalsets import RealFiles, real_streams
    from train.streams import StreamConfig

    cfg = config.load(args.config, args.overrides, quick=args.quick)
    params = config.section(cfg, "audio", AudioParams)
    negatives = sorted(c.path for c in realdata.negative_clips() if c.speaker in args.field_speakers)
    noise = sorted(c.path for c in realdata.noise_clips())
    if not negatives or not noise:
        raise SystemExit(f"fieldloop: ../shared/data has no non-keyword speech by {', '.join(args.field_speakers)} "
                         "(or no noise recordings); see --field-speakers")
    streams = real_streams(RealFiles([], negatives, noise), params, config.section(cfg, "streams", StreamConfig),
                           cache_dir=None)
    wavs = []
    for group, items in streams.items():
        wav = out / f"{group.replace('real_', 'field-')}.wav"
        if not wav.exists():
            write_wav(wav, np.concatenate([s.audio for s in items]), params.sample_rate)
        wavs.append(wav)
    log.info("field: %d clips by %s -> %s", len(negatives), ", ".join(args.field_speakers),
             ", ".join(w.name for w in wavs))
    return wavs


def collect(args, model: Path) -> Path:
    """Stages 1-2: the daemon's saved clips on the field audio, reviewed, under recordings/."""
    from bench.daemon import listen_argv, run
    from train.audio_io import list_audio_files
    from train.label.labels import Label, write_label

    loop = args.loop_build
    field_dir = loop / "recordings" / args.keyword / "field"
    stamp = loop / "field" / "collected.json"
    if stamp.exists():
        return field_dir
    work = loop / "field"
    work.mkdir(parents=True, exist_ok=True)
    saved = work / "detections"
    shutil.rmtree(saved, ignore_errors=True)
    config = work / "daemon.toml"
    config.write_text(f'[detect]\nthreshold = {args.review_threshold}\n[gpio]\nbackend = "log"\n'
                      f'[save]\nenabled = true\ndir = "{saved}"\nmax_mb = 2000.0\n')
    heard = {}
    for wav in field_audio(args, work):
        out, _ = run(listen_argv(model, wav, config), work / f"{wav.stem}.stderr")
        heard[wav.name] = len(out.detections)
        log.info("daemon on %s: %d detections at threshold %g", wav.name, len(out.detections),
                 args.review_threshold)
    clips = list_audio_files(saved)
    field_dir.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        dest = field_dir / clip.name
        shutil.copy2(clip, dest)
        sidecar = clip.with_suffix(".json")
        if sidecar.exists():
            shutil.copy2(sidecar, dest.with_suffix(".json"))
        write_label(dest, Label(kind="false_accept"))  # the review: no keyword was spoken in the field
    stamp.write_text(json.dumps({"review_threshold": args.review_threshold, "speakers": args.field_speakers,
                                 "detections": heard, "false_accepts": len(clips)}, indent=1) + "\n")
    log.info("review: %d saved detections labelled false accepts -> %s", len(clips), field_dir)
    return field_dir


def _steps_of(build: Path) -> int:
    from train import checkpoint

    return int(checkpoint.load(build / "train" / "last.pt")["step"])


def retrain(args) -> Path:
    """Stage 3: the same recipe plus the field recordings, as many steps as the first model."""
    loop = args.loop_build
    for part in ("sources", "rooms"):  # hard links: the renders are shared, the first build stays as it was
        if not (loop / part).exists() and (args.build / part).exists():
            subprocess.run(["cp", "-al", str(args.build / part), str(loop / part)], check=True)
    recordings = f"data.recordings_dir={(loop / 'recordings').resolve()}"
    steps = _steps_of(args.build)
    opts = _stage_opts(args, loop, recordings, "train.max_minutes=0", f"train.max_steps={steps}")
    model = loop / "model.onnx"
    if not model.exists():
        _run("train.dataset", opts)
        _run("train.train", opts)
        _run("export", opts)
    return model


def bench_both(args) -> dict[str, dict]:
    """Stage 4: both models on the same audio, the household's speakers out of the real negatives."""
    leave_out = "bench.real_negative_exclude_speakers=" + ",".join(args.field_speakers)
    results = {}
    for name, build in (("before", args.build), ("after", args.loop_build)):
        out = args.loop_build / f"bench-{name}"
        if not (out / "report.json").exists():
            _run("bench", _stage_opts(args, args.build, leave_out) +
                 ["--model", str(build / "model.onnx"), "--out", str(out)])
        results[name] = json.loads((out / "report.json").read_text())
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    model = args.build / "model.onnx"
    if not model.is_file():
        print(f"fieldloop: no {model}; run `make train export` first", file=sys.stderr)
        return 1
    try:
        collect(args, model)
        retrain(args)
        results = bench_both(args)
    except KeyboardInterrupt:
        print("fieldloop: interrupted; finished stages are kept, run it again to go on", file=sys.stderr)
        return 130
    from bench.loopreport import write_report

    path = write_report(args, results)
    print(f"field loop: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
