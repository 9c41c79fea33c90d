"""One turn of the field loop, measured: a household's own voice and the Pi's mistakes go back
into training, and the benchmark shows what that changed.

``make loop`` (``python -m bench.fieldloop --keyword computer --build build/computer``) plays a
household without a Pi, with the real recordings of ``../shared/data``. The household is a few of
its speakers (``--household``; by default krisgesling, whose "computer" the shipped model misses
most, and george, lucas and theo, whose spoken digits hold its likeliest false accepts). Each of
their files goes, by a hash of its name, to one period of the household's life:

- **recorded** (a quarter of the keyword takes): the user runs ``wakeword record`` -- the real
  session (calibration, endpointing, trimming) reads them from a WAV (``--input``), as it would
  from a microphone, into ``recordings/<keyword>/positive/``;
- **field** (another quarter of the takes, half of the other speech): the Pi listens. The
  daemon (``wakeword listen --input``, the program a Pi runs) hears it clean and in real
  recorded noise with ``[save]`` on, at a ``--review-threshold`` below the shipped one, as a Pi
  collecting for review does. Every saved clip is then reviewed the way a person does in
  ``make label``: a true accept (with the keyword's span) when a take was spoken there, else a
  false accept; the clips land in ``recordings/<keyword>/field/`` as ``make collect`` puts them;
  with ``--snippets-per-hour N`` the daemon also keeps room snippets (``[snippets]``), which land
  unreviewed in ``recordings/<keyword>/snippets/`` as negatives, as they do for a user;
- **later** (the other half of everything): held out, heard by no model, to measure on.

Then two fine-tunes of the shipped model (``train.finetune``, ``configs/finetune.toml``: same
steps, same recipe, same seed): **after** with the household's recordings and reviewed clips,
and **control** without them -- so what differs between the two is the loop, not the retraining.
All three models (before, control, after) are scored by the benchmark's own machinery (the
daemon on test WAVs, ``bench.testsets``/``bench.accuracy``) on the household's later audio, on
the real recordings of everyone else, and on the held-out synthetic voices.
``<loop>/loop-report.md`` puts them side by side.

Each stage is skipped when its output exists, so an interrupted run picks up where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

log = logging.getLogger("bench.fieldloop")

DEFAULT_HOUSEHOLD = ("krisgesling", "george", "lucas", "theo")
REVIEW_TOLERANCE_S = 1.0
"""A saved detection up to this long after a take ends is that take's true accept (the
benchmark's hit tolerance)."""


@dataclass(frozen=True)
class Household:
    """The household's files, by period (sorted paths)."""

    recorded: list[Path]
    field_keyword: list[Path]
    field_other: list[Path]
    later_keyword: list[Path]
    later_other: list[Path]

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from train import stagecli

    ap = stagecli.parser(
        "python -m bench.fieldloop", __doc__.splitlines()[0], "the shipped model's build folder (trained, exported)"
    )
    ap.add_argument("--loop-build", type=Path, help="where the loop works (default <build>-loop)")
    ap.add_argument(
        "--household",
        default=",".join(DEFAULT_HOUSEHOLD),
        help="speakers of ../shared/data who are the household (comma-separated)",
    )
    ap.add_argument(
        "--review-threshold",
        type=float,
        default=0.1,
        help="threshold the daemon collects at (the shipped one stays in the model)",
    )
    ap.add_argument(
        "--snippets-per-hour",
        type=float,
        default=0.0,
        help="the daemon also keeps this many room snippets per hour of field audio (0: off)",
    )
    args = ap.parse_args(argv)
    args.household = tuple(s.strip() for s in args.household.split(",") if s.strip())
    args.loop_build = args.loop_build or args.build.with_name(args.build.name + "-loop")
    if not 0 < args.review_threshold < 1:
        ap.error("--review-threshold must lie in (0, 1)")
    if not args.household:
        ap.error("--household names no speaker")
    if not 0 <= args.snippets_per_hour <= 720:
        ap.error("--snippets-per-hour must lie in [0, 720]")
    return args


def _cfg(args) -> dict:
    from train import stagecli

    return stagecli.load_config(args)


def _share(path: Path) -> float:
    """A stable number in [0, 1) from a file's name (which period it belongs to)."""
    return int(hashlib.sha256(path.name.encode()).hexdigest()[:8], 16) / 2**32


def split_household(keyword: str, speakers: tuple[str, ...]) -> Household:
    """The household's real recordings, split into periods by a hash of each file's name."""
    from train import realdata

    takes = sorted(c.path for c in realdata.keyword_clips(keyword) if c.speaker in speakers)
    other = sorted(c.path for c in realdata.negative_clips(keyword=keyword) if c.speaker in speakers)
    if not takes and not other:
        raise SystemExit(f"fieldloop: ../shared/data has no recordings by {', '.join(speakers)}; see --household")
    return Household(
        recorded=[p for p in takes if _share(p) < 0.25],
        field_keyword=[p for p in takes if 0.25 <= _share(p) < 0.5],
        field_other=[p for p in other if _share(p) < 0.5],
        later_keyword=[p for p in takes if _share(p) >= 0.5],
        later_other=[p for p in other if _share(p) >= 0.5],
    )


# -- stage 1: the user records takes -----------------------------------------------------


def record(args, hh: Household) -> Path:
    """``wakeword record --input`` on the household's "recorded" takes, laid out as a person
    speaks them to a microphone (quiet room, a take, a pause, the next take)."""
    from device.params import AudioParams
    from train.audio_io import read_audio, write_wav

    out = args.loop_build / "recordings" / args.keyword
    stamp = args.loop_build / "record" / "recorded.json"
    if stamp.exists() or not hh.recorded:
        return out
    params = AudioParams()
    parts = []
    for path in hh.recorded:  # one session, one room: every take's background brought to one level
        take = one_room(read_audio(path, params), params.sample_rate)
        parts += [room_tone(take, 1.5, params.sample_rate), take]
    parts.append(room_tone(take, 1.5, params.sample_rate))
    session = args.loop_build / "record" / "session.wav"
    write_wav(session, np.concatenate(parts), params.sample_rate)
    shutil.rmtree(out / "positive", ignore_errors=True)  # a session cut short is recorded again whole
    from bench.daemon import wakeword_command

    cmd = wakeword_command() + [
        "record",
        "--keyword",
        args.keyword,
        "--out",
        str(out),
        "--input",
        str(session),
        "--yes",
        "--takes",
        str(len(hh.recorded)),
        "--speaker",
        "household",
    ]
    log.info("$ %s", " ".join(cmd))
    done = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    kept = sorted((out / "positive").glob("*.wav"))
    said = (done.stderr or done.stdout).strip().splitlines()
    if not kept:
        raise SystemExit(f"fieldloop: wakeword record kept no take (exit {done.returncode}): {' / '.join(said[-3:])}")
    if len(kept) < len(hh.recorded):  # as in a real session, a take can be lost; say so and go on
        log.warning("record kept %d of %d takes: %s", len(kept), len(hh.recorded), said[-1] if said else "")
    stamp.write_text(json.dumps({"played": len(hh.recorded), "kept": len(kept)}, indent=1) + "\n")
    log.info("record: %d of %d takes kept -> %s", len(kept), len(hh.recorded), out / "positive")
    return out


SESSION_FLOOR_DBFS = -55.0
"""Background level of the simulated recording session's room."""


def _frames(take: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    n = int(0.02 * sample_rate)
    frames = take[: len(take) // n * n].reshape(-1, n)
    return frames, np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))


def one_room(take: np.ndarray, sample_rate: int) -> np.ndarray:
    """``take`` scaled so its background (quietest fifth of 20 ms frames) sits at
    :data:`SESSION_FLOOR_DBFS` -- takes recorded in other rooms, as if spoken in one (a person
    nearer or further from the microphone), peak kept below -1 dBFS."""
    _, rms = _frames(take, sample_rate)
    floor = max(float(np.percentile(rms, 20)), 1e-6)
    gain = min(10 ** (SESSION_FLOOR_DBFS / 20) / floor, 0.89 / max(float(np.max(np.abs(take))), 1e-6))
    return (take * gain).astype(np.float32)


def room_tone(take: np.ndarray, seconds: float, sample_rate: int) -> np.ndarray:
    """``seconds`` of the background of ``take`` (its quietest fifth of 20 ms frames, tiled): the
    pause before or after it in a session. A pause quieter than the take's own background would
    make the recorder hear that background as speech and keep the whole file."""
    frames, rms = _frames(take, sample_rate)
    quiet = frames[rms <= np.percentile(rms, 20)].reshape(-1)
    return np.resize(quiet, int(seconds * sample_rate)).astype(np.float32)


# -- stage 2: the Pi listens, a person reviews ---------------------------------------------


def field_audio(args, hh: Household, out: Path) -> list[tuple[Path, list[tuple[float, float]]]]:
    """The field period as two WAVs (clean, in real noise) with the keyword spans in each."""
    from device.params import AudioParams
    from train import config, realdata
    from train.audio_io import write_wav
    from train.evalsets import RealFiles, real_streams
    from train.streams import StreamConfig

    cfg = _cfg(args)
    params = config.section(cfg, "audio", AudioParams)
    noise = sorted(c.path for c in realdata.noise_clips())
    if not noise or not (hh.field_keyword or hh.field_other):
        raise SystemExit(
            "fieldloop: no field audio (the household has no files in that period, or "
            "../shared/data has no noise recordings)"
        )
    streams = real_streams(
        RealFiles(hh.field_keyword, hh.field_other, noise),
        params,
        config.section(cfg, "streams", StreamConfig),
        cache_dir=None,
    )
    wavs = []
    for group, items in streams.items():
        wav = out / f"{group.replace('real_', 'field-')}.wav"
        spans, offset = [], 0.0
        for s in items:
            spans += [(offset + a, offset + b) for a, b in s.keyword_spans]
            offset += len(s.audio) / params.sample_rate
        if not wav.exists():
            write_wav(wav, np.concatenate([s.audio for s in items]), params.sample_rate)
        wavs.append((wav, spans))
    return wavs


def review(sidecar: dict, spans: list[tuple[float, float]], clip_s: float):
    """A person's verdict on one saved detection, from what was really said: a true accept with
    the keyword's span inside the clip, or a false accept."""
    from train.label.labels import Label

    t = float(sidecar["time_s"])
    for start, end in spans:
        if start <= t <= end + REVIEW_TOLERANCE_S:
            a = max(0.0, start - float(sidecar["clip_start_s"]))
            b = min(clip_s, end - float(sidecar["clip_start_s"]))
            return Label(kind="true_accept", keyword_spans=((round(a, 3), round(b, 3)),) if b > a else ())
    return Label(kind="false_accept")


def collect(args, model: Path, hh: Household) -> Path:
    """The daemon's saved clips on the field audio, reviewed, under ``recordings/<kw>/field``."""
    import soundfile as sf

    from bench.daemon import listen_argv, run
    from train.audio_io import list_audio_files
    from train.label.labels import write_label

    field_dir = args.loop_build / "recordings" / args.keyword / "field"
    work = args.loop_build / "field"
    stamp = work / "collected.json"
    if stamp.exists():
        return field_dir
    work.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(field_dir, ignore_errors=True)
    field_dir.mkdir(parents=True)
    summary = {"review_threshold": args.review_threshold, "speakers": list(args.household), "wavs": {}}
    for wav, spans in field_audio(args, hh, work):
        saved = work / f"detections-{wav.stem}"
        shutil.rmtree(saved, ignore_errors=True)
        config = work / f"daemon-{wav.stem}.toml"
        snippets = work / f"snippets-{wav.stem}"
        shutil.rmtree(snippets, ignore_errors=True)
        config.write_text(
            f'[detect]\nthreshold = {args.review_threshold}\n[gpio]\nbackend = "log"\n'
            f'[save]\nenabled = true\ndir = "{saved}"\nmax_mb = 2000.0\n'
            + (
                f'[snippets]\nenabled = true\ndir = "{snippets}"\nper_hour = {args.snippets_per_hour}\n'
                "max_mb = 2000.0\n"
                if args.snippets_per_hour
                else ""
            )
        )
        out, _ = run(listen_argv(model, wav, config), work / f"{wav.stem}.stderr")
        kept = _take_snippets(snippets, args.loop_build / "recordings" / args.keyword / "snippets" / wav.stem)
        verdicts = {"true_accept": 0, "false_accept": 0}
        for clip in list_audio_files(saved):
            sidecar = json.loads(clip.with_suffix(".json").read_text())
            label = review(sidecar, spans, sf.info(str(clip)).duration)
            dest = field_dir / f"{wav.stem}-{clip.name}"
            shutil.copy2(clip, dest)
            shutil.copy2(clip.with_suffix(".json"), dest.with_suffix(".json"))
            write_label(dest, label)
            verdicts[label.kind] += 1
        summary["wavs"][wav.name] = {
            "keywords": len(spans),
            "detections": len(out.detections),
            **verdicts,
            "snippets": kept,
        }
        log.info(
            "field %s: %d takes spoken, %d detections at %g -> %d true, %d false accepts",
            wav.name,
            len(spans),
            len(out.detections),
            args.review_threshold,
            verdicts["true_accept"],
            verdicts["false_accept"],
        )
    for kind in ("true_accept", "false_accept"):
        summary[kind] = sum(w[kind] for w in summary["wavs"].values())
    stamp.write_text(json.dumps(summary, indent=1) + "\n")
    return field_dir


def _take_snippets(kept: Path, dest: Path) -> int:
    """The room snippets the daemon kept, unreviewed, where ``make collect`` puts them."""
    shutil.rmtree(dest, ignore_errors=True)
    if not kept.is_dir():
        return 0
    dest.mkdir(parents=True)
    n = 0
    for wav in sorted(kept.glob("*_snippet.wav")):
        shutil.copy2(wav, dest / wav.name)
        shutil.copy2(wav.with_suffix(".json"), dest / wav.with_suffix(".json").name)
        n += 1
    return n


# -- stage 3: fine-tune with and without the household -------------------------------------


def finetune_both(args) -> dict[str, Path]:
    """``after`` (``[data] recordings_dir`` = the household's) and ``control`` (the shipped
    model's own data, so its dataset is the very one the model was trained on, borrowed, not
    mixed again), in parallel; each is an ordinary ``make finetune`` of the shipped model."""
    from train.finetune import StageFailed, finetune

    extra = {"control": [], "after": [f"data.recordings_dir={(args.loop_build / 'recordings').resolve()}"]}
    models = {"before": args.build / "model.onnx"}

    def one(name: str) -> Path:
        out = args.loop_build / name
        if (out / "model.onnx").exists():
            return out / "model.onnx"
        return finetune(
            args.keyword,
            args.build,
            out,
            quick=args.quick,
            configs=args.config,
            overrides=[*args.overrides, *extra[name]],
        )

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            models.update(zip(extra, pool.map(one, extra)))
    except StageFailed as exc:
        raise SystemExit(f"fieldloop: {exc}") from None
    return models


# -- stage 4: measure --------------------------------------------------------------------


def measure_sets(args, hh: Household, params, cfg: dict, bc) -> dict[str, list]:
    """``household`` (its later period), ``others`` (everyone else's real recordings and the
    held-out synthetic voices)."""
    from bench import testsets
    from train import config, realdata
    from train.evalsets import RealFiles
    from train.streams import StreamConfig

    sc = config.section(cfg, "streams", StreamConfig)
    bc = replace(bc, real_exclude_speakers=args.household)
    noise = sorted(c.path for c in realdata.noise_clips())
    out = args.loop_build / "streams"
    household = testsets.recorded_sets("household", RealFiles(hh.later_keyword, hh.later_other, noise), params, sc, out)
    others = testsets.synthetic_sets(
        args.keyword, args.build, params, sc, bc, args.build / "bench" / "streams"
    ) + testsets.real_sets(args.keyword, params, sc, bc, out)
    return {"household": household, "others": others}


def measure(args, models: dict[str, Path], hh: Household) -> dict:
    """Every model through the daemon on every test WAV -> the benchmark's accuracy figures."""
    from bench import pipeline
    from bench.config import BenchConfig
    from device.config import DetectConfig
    from train import config

    path = args.loop_build / "measured.json"
    if path.exists():
        return json.loads(path.read_text())
    cfg = _cfg(args)
    bc = config.section(cfg, "bench", BenchConfig)
    sets = measure_sets(args, hh, pipeline.load_meta(models["before"]).params, cfg, bc)
    tests = [t for group in sets.values() for t in group]
    run_dir = args.loop_build / "run"
    quiet = pipeline.write_daemon_configs(run_dir)["quiet"]
    by_model: dict[str, dict] = {}
    for name, model in models.items():
        decision = DetectConfig().resolve(pipeline.load_meta(model))
        scored = pipeline.score_model(name, model, tests, quiet, run_dir, decision)
        by_model[name] = {
            "path": str(model),
            "threshold": decision.threshold,
            **{group: pipeline.accuracy_of(scored, items, decision, bc) for group, items in sets.items() if items},
        }
    result = {
        "models": by_model,
        "tests": {
            group: [{"slug": t.spec.slug, "keywords": len(t.spans), "hours": t.hours, "clips": t.clips} for t in items]
            for group, items in sets.items()
        },
    }
    path.write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from train import stagecli

    stagecli.setup_logging()
    model = args.build / "model.onnx"
    if not model.is_file() or not (args.build / "train" / "best.pt").is_file():
        print(f"fieldloop: error: no {model} (or its checkpoint); run `make train export` first", file=sys.stderr)
        return stagecli.EXIT_FAILED

    def body() -> int:
        from bench.loopreport import write_report

        hh = split_household(args.keyword, args.household)
        log.info("household %s: %s", ", ".join(args.household), hh.counts())
        record(args, hh)
        collect(args, model, hh)
        models = finetune_both(args)
        measured = measure(args, models, hh)
        print(f"field loop: {write_report(args, hh, measured)}")
        return 0

    return stagecli.run("fieldloop", body, interrupted="finished stages are kept, run it again to go on")


if __name__ == "__main__":
    sys.exit(main())
