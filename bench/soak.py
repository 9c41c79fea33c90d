"""``python -m bench.soak [--model M|tone] [--minutes N] [--out DIR]`` (``make soak``): the daemon on
a live capture path for a long time, with faults injected on a schedule.

The real ``wakeword listen`` runs on a paced ALSA microphone (:mod:`bench.soakrig`) that plays
a long WAV with keyword events at known times (:mod:`bench.soakaudio`), with ``[gpio] backend =
"log"``, ``[save]`` on a small tmpfs, a ``[hook]`` that can be made to hang, and ``NOTIFY_SOCKET``
on a real unix datagram socket. Every round of faults (one per ``--fault-every-min``) injects, one
after the other:

- **stall**: SIGSTOP for ``--stall-s``, then SIGCONT: the backlog must be dropped as stale,
  nothing detected late;
- **hook hang**: the next detection's hook (and a child it started) hangs past ``timeout_s``:
  both must be killed, detection must go on meanwhile;
- **full disk**: the save folder's filesystem is filled to ENOSPC for ``--full-disk-s``: saves
  fail with a warning, detection goes on;
- **device loss**: the microphone vanishes for ``--loss-s`` and comes back: the daemon must
  reconnect by itself;
- **overrun**: a stall longer than the capture queue (``queue_s`` + 4 s): the backlog bursts in
  and the drop-oldest queue overflows. (The sound server keeps the stalled audio, so ALSA itself
  reports no overrun; what overflows is the daemon's own queue, as after a long stall on a Pi.)
- **wedged device** (first round only): the sound server is frozen (SIGSTOP) for ``--wedge-s``: the stream goes
  silent, and closing or reopening it blocks inside the audio library, so the inference loop stops
  pinging the watchdog. The bench plays systemd's part (``--watchdog-s``, the unit's
  ``WatchdogSec``): it aborts the silent daemon (SIGABRT) and starts it again; once the device is
  reset (the frozen server killed and started afresh) the daemon must be listening again.

At the end a **SIGTERM lands while a save is pending** (just after a detection, before its
post-roll is complete): the daemon must exit 0 having written it whole. Before the live run the
same WAV goes through the daemon as a file (``--input``, no faults): a keyword is *audible* when
that run detects it, so a real model's own misses are not blamed on the soak.

Writes ``<out>/soak-report.md`` and ``<out>/soak.json``; exit status 1 when a hard criterion fails
(a crash, a late detection, a missed audible keyword, RSS growth over 1 MiB/h on a run long enough
to judge it, a device that did not come back, a broken save, a hook left running), 2 when the
bench cannot run or cannot judge what it ran (one line: e.g. the rig's own gaps, on a machine too
busy to feed it, swallowed every keyword).
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import signal
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

log = logging.getLogger("bench.soak")

HOOK_SCRIPT = """#!/bin/sh
# The soak's detection hook: log each run; hang (with a child) when the bench has armed the flag.
log=$1 flag=$2
echo "$$ run $WAKEWORD_TIME_S" >> "$log"
if mv "$flag" "$flag.taken.$$" 2>/dev/null; then
  echo "$$ hang" >> "$log"
  sleep 3600 &
  sleep 3600
fi
"""


@dataclass(frozen=True)
class Settings:
    minutes: float = 120.0
    """Audio to play (minutes)."""
    every_s: float = 5.0
    """One keyword slot per this many seconds of audio (tone audio)."""
    fault_every_min: float = 10.0
    """One round of faults per this many minutes of audio (at least one round)."""
    stall_s: float = 4.0
    overrun_s: float = 0.0
    """SIGSTOP long enough to overflow the capture queue; 0 = ``queue_s`` + 4 s."""
    loss_s: float = 8.0
    full_disk_s: float = 20.0
    hook_timeout_s: float = 2.0
    queue_s: float = 8.0
    stale_after_s: float = 1.5
    retry_max_s: float = 30.0
    no_audio_s: float = 3.0
    gap_s: float = 12.0
    """Audio between two faults (s), so each one's recovery is seen on its own."""
    settle_s: float = 2.0
    """After an outage, keywords starting sooner than this are not expected (the model restarts)."""
    disk_mib: float = 4.0
    seed: int = 0
    wedge_s: float = 45.0
    """How long the sound server is frozen (SIGSTOP) in the wedged-device fault; 0 = no such fault."""
    watchdog_s: float = 30.0
    """The emulated WatchdogSec (deploy/wakeword.service): a daemon silent this long is aborted."""
    judge_rss_min: float = 30.0
    """Runs shorter than this (minutes of audio) report RSS growth without judging it."""

    @property
    def overrun_stop_s(self) -> float:
        return self.overrun_s or self.queue_s + 4.0


@dataclass
class Fault:
    kind: str
    at_s: float
    """Planned time in the soak audio (s)."""
    duration_s: float = 0.0
    start_s: float | None = None
    """When it really began / ended (s of soak audio, measured)."""
    end_s: float | None = None
    outage: bool = False
    """Audio around it is not expected to be detected (stall, overrun, device loss, restart)."""
    note: str = ""
    ok: bool | None = None


class SoakError(RuntimeError):
    """The bench cannot run (one line)."""


def plan_faults(duration_s: float, s: Settings, step_s: float) -> list[Fault]:
    """Rounds of faults, each round: a stall; then a hook hang and a full disk together (neither
    stops the audio); a device loss; an overrun; in the first round a wedged device too -- each
    ``gap_s`` of audio after the previous one's recovery. The final SIGTERM comes in the last
    ``2 * every_s``."""
    recover_s = min(s.retry_max_s, 2 * s.loss_s) + 2.0  # the reconnect backoff, then the open
    background_s = max(s.full_disk_s, s.hook_timeout_s + step_s)

    def one_round(t: float, first: bool) -> tuple[list[Fault], float]:
        faults = [Fault("stall", t, s.stall_s, outage=True)]
        t += s.stall_s + s.gap_s
        faults += [Fault("hook_hang", t), Fault("full_disk", t, s.full_disk_s)]
        t += background_s + s.gap_s
        faults.append(Fault("device_loss", t, s.loss_s, outage=True))
        t += s.loss_s + recover_s + s.gap_s
        # last, so that (in long runs) its stale-audio warning is not the one the daemon holds back
        # for a minute after the stall's: it says how far behind the loop was, i.e. what the queue kept
        faults.append(Fault("overrun", t, s.overrun_stop_s, outage=True))
        t += s.overrun_stop_s + s.gap_s
        if s.wedge_s and first:  # once: the restart it causes would cut the memory record short
            faults.append(Fault("wedged_device", t, s.wedge_s, outage=True))
            t += s.wedge_s + recover_s + 5.0 + s.gap_s  # + a restart: imports, model, device scan
        return faults, t

    final_s = duration_s - 2 * s.every_s
    _, round_s = one_round(0.0, True)
    if s.gap_s + round_s > final_s:
        raise SoakError(
            f"{duration_s / 60:.2f} min of audio is too short for one round of faults "
            f"(needs {(s.gap_s + round_s + 2 * s.every_s) / 60:.2f} min with these settings)"
        )
    rounds = max(1, int((final_s - s.gap_s) // max(round_s, s.fault_every_min * 60)))
    spacing = (final_s - s.gap_s) / rounds
    faults = []
    for r in range(rounds):
        faults += one_round(s.gap_s + r * spacing, r == 0)[0]
    faults.append(Fault("sigterm_mid_save", round(final_s, 3)))
    for f in faults:
        f.at_s = round(f.at_s, 3)
    return faults


def toml_str(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text)


def daemon_config(path: Path, s: Settings, save_dir: Path, hook_argv: list[str], pcm: str) -> Path:
    path.write_text(f"""# written by bench.soak
log_level = "info"
[capture]
device = {toml_str(pcm)}
channels = 1
rate_hz = 16000
queue_s = {s.queue_s}
stale_after_s = {s.stale_after_s}
no_audio_s = {s.no_audio_s}
retry_min_s = {min(1.0, s.retry_max_s)}
retry_max_s = {s.retry_max_s}
[gpio]
backend = "log"
[hook]
command = {toml_str(shlex.join(hook_argv))}
timeout_s = {s.hook_timeout_s}
[save]
enabled = true
dir = {toml_str(str(save_dir))}
max_mb = {max(0.5, s.disk_mib * 0.5):g}
""")
    return path


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    d = Settings()
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--model",
        help="model.onnx, or `tone` (the tone model of bench/tonemodel.py, built here); "
        "default <build>/model.onnx, with --quick the tone model",
    )
    ap.add_argument(
        "--audio",
        type=Path,
        metavar="WAV",
        help="keyword audio for a real model: a 16 kHz WAV "
        "with a .json sidecar of keyword_spans (e.g. a `make bench` positive stream), repeated",
    )
    ap.add_argument("--minutes", type=float, help=f"minutes of audio (default {d.minutes:g}; --quick 3)")
    ap.add_argument("--out", type=Path, help="report folder (default <build>/soak)")
    ap.add_argument("--keyword", default="computer", help="(from make) names the default build folder")
    ap.add_argument("--build", type=Path, help="build folder (default build/<keyword>)")
    ap.add_argument("--quick", action="store_true", help="a few minutes; the tone model unless --model")
    for name in (
        "every_s",
        "fault_every_min",
        "stall_s",
        "overrun_s",
        "loss_s",
        "full_disk_s",
        "hook_timeout_s",
        "queue_s",
        "stale_after_s",
        "retry_max_s",
        "no_audio_s",
        "gap_s",
        "settle_s",
        "disk_mib",
        "wedge_s",
        "watchdog_s",
        "judge_rss_min",
    ):
        ap.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name), metavar="N")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep-audio", action="store_true", help="keep the soak WAV (hours of audio are large)")
    return ap.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    import math

    values = {f: getattr(args, f) for f in Settings.__dataclass_fields__ if f != "minutes"}
    minutes = args.minutes if args.minutes is not None else (3.0 if args.quick else Settings.minutes)
    for k, v in {"minutes": minutes, **values}.items():
        if not math.isfinite(v) or v < 0:
            raise SoakError(f"--{k.replace('_', '-')} must be a finite number >= 0, got {v}")
    return Settings(minutes=minutes, **values)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s soak: %(message)s", datefmt="%H:%M:%S")
    from bench.daemon import DaemonError
    from bench.soakaudio import AudioError
    from bench.soakrig import RigError

    command = "python -m bench.soak " + " ".join(shlex.quote(a) for a in argv)

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    # whatever stops the bench, the rig comes down with it: daemon, sound server, tmpfs, hung hooks
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, interrupted)
    try:
        settings = settings_from(args)
        from bench.soakrun import run

        result = run(args, settings, command)
    except (SoakError, RigError, AudioError, DaemonError) as exc:
        print(f"soak: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("soak: interrupted (no report written; the rig was taken down)", file=sys.stderr)
        return 130
    print(f"wrote {result['report']}")
    failed = [c for c in result["criteria"] if c["ok"] is False]
    if failed:
        print(f"soak: FAILED: {', '.join(c['name'] for c in failed)}", file=sys.stderr)
        for line in failure_details(result, failed):
            print(f"soak:   {line}", file=sys.stderr)
        return 1
    if result.get("unjudged"):
        print(f"soak: error: {result['unjudged']}", file=sys.stderr)
        return 2
    return 0


def failure_details(result: dict, failed: list[dict]) -> list[str]:
    """What a failed soak tells on stderr beside the report: each failed criterion's own detail, then
    the timeline a late or unexpected detection is read against (its time, the faults and outages)."""
    out = [f"{c['name']}: {c['detail']}" for c in failed]
    timed = [("late", result["late"]), ("unexpected at (s)", result["unexpected_at_s"])]
    timed.append(("late by the daemon's own clock (arrival s, lateness s)", result["late_by_own_clock"]))
    timed.append(("missed", result["missed"]))
    out += [f"{name}: {items}" for name, items in timed if items]
    if any(items for _, items in timed):
        out.append("faults: " + "; ".join(f"{f['kind']} {f['start_s']}-{f['end_s']} s" for f in result["faults"]))
        out.append("outages: " + "; ".join(f"{o['kind']} {o['from_s']}-{o['to_s']} s" for o in result["outages"]))
        out.append("keywords (s): " + ", ".join(f"{a}-{b}" for a, b in result["keywords_s"]))
        out.append("live detections at (s): " + ", ".join(map(str, result["live_at_s"])))
    if result.get("report"):
        out.append(f"report: {result['report']}")
        times = [t for t, _ in result["late_by_own_clock"]] + result["unexpected_at_s"]
        times += [x["end_s"] + x["latency_s"] for x in result["late"]]
        out += _log_around(Path(result["report"]).parent / "daemon.log", times)
    return out


def _log_around(log_path: Path, times: list[float], before_s: float = 4.0, after_s: float = 0.5) -> list[str]:
    """The daemon's log lines (each stamped with the bench's clock) from ``before_s`` before to
    ``after_s`` after each of ``times``: what the daemon did around a late or unexpected detection
    (a CI log keeps nothing else of the run)."""
    if not times or not log_path.is_file():
        return []
    lines = []
    for line in log_path.read_text(errors="replace").splitlines():
        stamp = line.split(maxsplit=1)[0] if line.strip() else ""
        try:
            t = float(stamp)
        except ValueError:
            continue
        if any(x - before_s <= t <= x + after_s for x in times):
            lines.append(line.strip()[:200])
    return ["daemon log around them:", *lines[:40]]


def fault_dict(f: Fault) -> dict:
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(f).items()}


if __name__ == "__main__":
    from bench.soak import main as _main  # the package's module, so its exception classes are the ones raised

    sys.exit(_main())
