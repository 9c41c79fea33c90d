"""One soak run, top to bottom: audio, offline reference, rig, daemon, faults, report (:mod:`bench.soak`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.soak import HOOK_SCRIPT, Fault, Settings, SoakError, daemon_config, plan_faults
from bench.soakaudio import Event, write_keyword_stream, write_tone_stream
from bench.soakdaemon import DaemonRun, code_under_test, daemon_env
from bench.soakrig import PCM, Feeder, NotifySocket, PulseMic, SaveDisk, processes_in_group
from bench.tonemodel import build_tone_model

log = logging.getLogger("bench.soak")

READY_TIMEOUT_S = 90.0
START_TIMEOUT_S = 90.0
"""systemd's default TimeoutStartSec: how long a (re)started daemon may take to send READY."""


def resolve_model(args: argparse.Namespace, build: Path) -> Path:
    """``--model`` (``tone``: the tone model of :mod:`bench.tonemodel`, built once into build/tone/), else
    <build>/model.onnx; with ``--quick`` the tone model."""
    name = args.model or ("tone" if args.quick else str(build / "model.onnx"))
    if name != "tone":
        path = Path(name)
        if not path.is_file():
            raise SoakError(
                f"no model at {path} (make train export first, or MODEL=..., or QUICK=1 for the tone model)"
            )
        return path.resolve()
    path = Path("build") / "tone" / "tone.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("building the tone model (bench/tonemodel.py, ~10 s) -> %s", path)
        import torch

        torch.set_num_threads(1)
        build_tone_model(path)
    return path.resolve()


def keyword_audio(args, build: Path, keyword: str) -> Path | None:
    """``--audio``, else the clean positive stream of ``make bench`` (real voices first, then the
    held-out synthetic ones), else None (the tone model needs none)."""
    if args.audio is not None or keyword == "tone":
        return args.audio
    streams = build / "bench" / "streams"
    for pattern in ("real-clean-pos-*.wav", "synthetic-clean-pos-*.wav"):
        found = sorted(streams.glob(pattern))
        if found:
            return found[0]
    raise SoakError(
        f"no keyword audio for {keyword!r}: run `make bench` first (its positive test streams are "
        "the soak's keywords), give AUDIO=file.wav (+ .json keyword_spans), or QUICK=1 for the tone model"
    )


def make_audio(source: Path | None, s: Settings, wav: Path) -> list[Event]:
    if source is not None:
        log.info("keywords from %s", source)
        return write_keyword_stream(wav, source, s.minutes * 60)
    return write_tone_stream(wav, s.minutes * 60, s.every_s, s.seed)


OFFSETS_MS = (0, 10, 20, 40, 60)
"""Where the offline reference starts the model's frames (ms of silence before the soak WAV). Live,
the daemon meets the audio at whatever offset each reconnection, drop and restart leaves (the front
end's frames are 10 ms, its outputs 80 ms), and a keyword scored just above the threshold at one
offset can fall below it at another: for the real two-head "computer" model, 2-4 % of the keywords
one offset detected were lost at another. A keyword is audible when every offset detects it."""


def _delayed(wav: Path, ms: int, dest: Path) -> Path:
    """``wav`` with ``ms`` of silence in front (a copy, written in blocks)."""
    import wave

    with wave.open(str(wav), "rb") as src, wave.open(str(dest), "wb") as out:
        out.setparams(src.getparams())
        out.writeframes(bytes(src.getsampwidth() * src.getnchannels() * (src.getframerate() * ms // 1000)))
        while block := src.readframes(1 << 18):
            out.writeframes(block)
    return dest


def _offline_run(model: Path, wav: Path, out: Path, ms: int) -> list[float]:
    from bench.daemon import DaemonError, parse_lines
    from bench.soakdaemon import REPO

    err = out / ("offline.log" if ms == 0 else f"offline-{ms}ms.log")
    src = wav if ms == 0 else _delayed(wav, ms, out / f"offline-{ms}ms.wav")
    try:
        with open(err, "w") as e:
            r = subprocess.run(
                [sys.executable, "-m", "device.cli", "listen", "--model", str(model), "--input", str(src), "--json"],
                cwd=REPO,
                env=daemon_env({}),
                stdout=subprocess.PIPE,
                stderr=e,
                text=True,
            )
    finally:
        if src != wav:
            src.unlink(missing_ok=True)
    if r.returncode != 0:
        raise DaemonError(f"the offline reference run failed ({r.returncode}); see {err}")
    return [round(t - ms / 1000, 3) for t, _ in parse_lines(r.stdout.splitlines()).detections]


def offline_reference(model: Path, wav: Path, out: Path, offsets_ms: tuple[int, ...] = OFFSETS_MS) -> list[list[float]]:
    """Detections (stream time) of the same daemon reading the WAV as a file, no faults: one list
    per offset of ``offsets_ms`` (two at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda ms: _offline_run(model, wav, out, ms), offsets_ms))


class Soak:
    """The live part: rig, daemon, faults (``run`` below drives it)."""

    def __init__(self, s: Settings, out: Path, model: Path, wav: Path, step_s: float, post_roll_s: float = 1.0):
        self.s, self.out, self.step_s, self.post_roll_s = s, out, step_s, post_roll_s
        self.mic = PulseMic(out / "pulse.log")
        self.disk = SaveDisk(out / "save-disk", s.disk_mib)
        self.notify = NotifySocket(self.mic.dir / "notify.sock")
        hook = out / "hook.sh"
        hook.write_text(HOOK_SCRIPT)
        self.hook_log, self.hook_flag = out / "hook.log", out / "hook.hang"
        self.hook_log.write_text("")
        self.hook_flag.unlink(missing_ok=True)
        cfg = daemon_config(
            out / "daemon.toml",
            s,
            self.disk.folder,
            ["/bin/sh", str(hook.resolve()), str(self.hook_log.resolve()), str(self.hook_flag.resolve())],
            PCM,
        )
        self.env = daemon_env({**self.mic.env(), "NOTIFY_SOCKET": str(self.notify.path)})
        self.code = code_under_test(self.env)
        self.daemon = DaemonRun(
            ["listen", "--model", str(model), "--config", str(cfg), "--json"], self.env, out / "daemon.log"
        )
        self.feeder = Feeder(wav, self.mic)
        self.t0 = 0.0
        self.hook_pgids: list[int] = []
        self.watchdog_aborts: list[float] = []
        self._wd_stop = threading.Event()
        self._wd = threading.Thread(target=self._watchdog, name="soak-watchdog", daemon=True)

    def now_s(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        self.mic.start()
        t = time.monotonic()
        self.daemon.start()
        while not self.notify.log.times("READY=1"):
            if time.monotonic() - t > READY_TIMEOUT_S or (self.daemon.exits and not self.daemon.alive):
                last = self.daemon.lines[-1][1] if self.daemon.lines else "(no output)"
                raise SoakError(f"the daemon did not report READY within {READY_TIMEOUT_S:g} s: {last}")
            time.sleep(0.05)
        self.t0 = self.daemon.t0 = time.monotonic() + 0.5
        self.feeder.start_at(self.t0)
        self._wd.start()
        log.info("daemon ready (code from %s); playing %.1f min of audio", self.code, self.s.minutes)

    def run_faults(self, faults: list[Fault]) -> None:
        """Each fault on its own thread at its planned time (a hook hang and a full disk overlap);
        the final SIGTERM only once every other fault is over."""
        threads: list[threading.Thread] = []
        for f in faults:
            if f.kind == "sigterm_mid_save":
                for t in threads:
                    t.join()
            wait = self.t0 + f.at_s - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            log.info("fault at %.1f s: %s", self.now_s(), f.kind)
            t = threading.Thread(target=self._inject, args=(f,), name=f"soak-{f.kind}", daemon=True)
            t.start()
            threads.append(t)
        for t in threads:
            t.join()

    def _inject(self, f: Fault) -> None:
        try:
            getattr(self, f"_{f.kind}")(f)
        except Exception as exc:  # a broken fault is reported as such, the soak goes on
            f.ok, f.note = False, f"the bench failed to inject it: {exc!r}"
            log.exception("fault %s", f.kind)

    def _stop_cont(self, f: Fault) -> None:
        before = self._dropped_s()
        f.start_s = self.now_s()
        self.daemon.signal(signal.SIGSTOP)
        time.sleep(f.duration_s)
        self.daemon.signal(signal.SIGCONT)
        f.end_s = self.now_s()
        time.sleep(self.s.stale_after_s + 2 * self.step_s)  # a STATUS line after the catch-up
        f.note = (
            f"SIGSTOP {f.duration_s:g} s; the daemon dropped {self._dropped_s() - before:.1f} s of stale or "
            "overflowed audio"
        )
        behind = [ln for at, ln in self.daemon.lines if at >= self.t0 + f.start_s and "fell behind by" in ln]
        if behind:  # the daemon logs this at most once a minute
            f.note += "; it logged: " + behind[0].split("WARNING: ", 1)[-1]

    def _dropped_s(self) -> float:
        for _, text in reversed(self.notify.log.statuses()):
            m = re.search(r"dropped ([0-9.]+) s", text)
            if m:
                return float(m.group(1))
        return 0.0

    _stall = _overrun = _stop_cont

    def _watchdog(self) -> None:
        """systemd's part: no WATCHDOG=1 for ``watchdog_s`` after READY (or no READY within
        TimeoutStartSec) -> SIGABRT; the restart follows (Restart=on-failure)."""
        messages = self.notify.log.messages
        while not self._wd_stop.wait(0.25):
            d = self.daemon
            if not d.alive or d.stopping:
                continue
            started, now = d.starts[-1], time.monotonic()
            last = None
            for at, msg in reversed(messages):
                if at < started:
                    break
                if msg in ("WATCHDOG=1", "READY=1"):
                    last = at
                    break
            if (now - last > self.s.watchdog_s) if last is not None else (now - started > START_TIMEOUT_S):
                self.watchdog_aborts.append(now)
                log.info("watchdog: no ping for %.0f s: SIGABRT", now - (last or started))
                d.abort_for_watchdog()
                time.sleep(2.0)  # the restart takes over

    def _wedged_device(self, f: Fault) -> None:
        f.start_s = self.now_s()
        since = self.t0 + f.start_s
        self.mic.freeze()
        time.sleep(f.duration_s)
        # Reset, not thawed: a PulseAudio server that was frozen serves streams opened after the
        # thaw ~2 s late (measured), which would be the rig's fault, not the daemon's. So the wedged
        # device is power-cycled, as one would a wedged USB microphone.
        self.mic.stop()
        self.mic.start()
        thawed = self.now_s()
        back = self._wait(
            lambda: (
                self.daemon.lines_since(since, "back: listening")
                or [t for t in self.notify.log.times("READY=1") if t > since]
            ),
            self.s.retry_max_s + 60,
        )
        f.end_s = (back[0] - self.t0) if back else self.now_s()
        pings = [t for t in self.notify.log.times("WATCHDOG=1") if since <= t <= self.t0 + f.end_s]
        gap = max((b - a for a, b in zip(pings, pings[1:])), default=f.end_s - f.start_s)
        aborts = [t - self.t0 for t in self.watchdog_aborts if since <= t]
        f.ok = back is not None and (bool(aborts) or gap <= self.s.watchdog_s)
        f.note = (
            f"sound server frozen {f.duration_s:g} s, then reset; "
            + (
                f"the loop went silent, the watchdog aborted it at {aborts[0] - f.start_s:.1f} s "
                "and it was started again; "
                if aborts
                else f"it kept pinging (longest gap {gap:.1f} s); "
            )
            + (f"listening again {f.end_s - thawed:.1f} s after the reset" if back else "NOT listening again")
        )

    def _hook_hang(self, f: Fault) -> None:
        f.start_s = self.now_s()
        self.hook_flag.write_text("")
        hung = self._wait(
            lambda: [
                ln
                for ln in self.hook_log.read_text().splitlines()
                if ln.endswith(" hang") and int(ln.split()[0]) not in self.hook_pgids
            ],
            6 * self.s.every_s,
        )
        if not hung:
            f.ok, f.note = False, "no detection came to run the hook"
            return
        pgid = int(hung[0].split()[0])
        self.hook_pgids.append(pgid)
        killed = self.daemon.wait_for_line(
            "killed after", self.t0 + f.start_s, self.s.hook_timeout_s + self.step_s + 10
        )
        f.end_s = self.now_s()
        time.sleep(0.5)
        left = processes_in_group(pgid)
        f.ok = killed is not None and not left
        f.note = (
            f"hook pid {pgid} hung with a child; "
            + ("killed by the daemon" if killed else "NOT killed")
            + (f"; {len(left)} process(es) left running" if left else "; nothing left running")
        )

    def _full_disk(self, f: Fault) -> None:
        if not self.disk.can_fill:
            f.note = f"skipped ({self.disk.why_not})"
            return
        f.start_s = self.now_s()
        try:
            filled = self.disk.fill()
            time.sleep(f.duration_s)
        finally:
            self.disk.free()
        f.end_s = self.now_s()
        failed = self.daemon.lines_since(self.t0 + f.start_s, "could not save detection audio")
        dets = [d for d in self.daemon.detections if f.start_s <= d.at - self.t0 <= f.end_s]
        f.ok = self.daemon.alive and (bool(failed) or not dets)
        f.note = (
            f"filled {filled / 1024:.0f} KiB to ENOSPC; {len(dets)} detection(s) meanwhile, "
            f"{len(failed)} save(s) refused with a warning" + ("" if dets else " (not exercised)")
        )

    def _device_loss(self, f: Fault) -> None:
        f.start_s = self.now_s()
        self.mic.stop()
        time.sleep(f.duration_s)
        back_from = self.now_s()
        self.mic.start()
        back = self.daemon.wait_for_line("back: listening", self.t0 + f.start_s, self.s.retry_max_s + 30)
        f.end_s = (back - self.t0) if back is not None else self.now_s()
        lost = self.daemon.lines_since(self.t0 + f.start_s, "lost (")
        f.ok = back is not None
        f.note = ("lost seen; " if lost else "") + (
            f"device back at {back_from:.1f} s, daemon listening again {f.end_s - back_from:.1f} s later"
            if back
            else "the daemon did NOT reconnect"
        )

    def _sigterm_mid_save(self, f: Fault) -> None:
        det = self.daemon.wait_for_detection(time.monotonic(), 3 * self.s.every_s)
        if det is not None:
            time.sleep(self.post_roll_s / 2)  # the clip still waits for its post-roll: a save is pending
        f.start_s = self.now_s()
        stopped = self.daemon.stop(30.0)
        f.end_s = self.now_s()
        self.pending_time_s = det.time_s if det is not None else None
        f.ok = stopped
        f.note = (
            (
                f"SIGTERM {self.post_roll_s / 2:g} s after the detection at stream time {det.time_s:.2f} s "
                "(its clip still pending); "
            )
            if det
            else "no detection came: SIGTERM without a pending save; "
        )
        f.note += "stopped" if stopped else "did NOT stop within 30 s (killed)"

    @staticmethod
    def _wait(fn, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            got = fn()
            if got:
                return got
            time.sleep(0.1)
        return None

    def check_saves(self) -> dict:
        folder = self.disk.folder
        names = [p.name for p in folder.iterdir() if p.is_file()] if folder.is_dir() else []
        wavs = {n[:-4] for n in names if n.endswith(".wav") and not n.startswith(".")}
        jsons = {n[:-5] for n in names if n.endswith(".json") and not n.startswith(".")}
        tmp = [n for n in names if n.endswith(".tmp")]
        pending = getattr(self, "pending_time_s", None)
        found = None
        if pending is not None:
            for stem in jsons:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    if abs(json.loads((folder / f"{stem}.json").read_text())["time_s"] - pending) < 0.01:
                        found = stem
        return {
            "wav": len(wavs),
            "json": len(jsons),
            "tmp_left": tmp,
            "wav_without_json": sorted(wavs - jsons),
            "json_without_wav": sorted(jsons - wavs),
            "pending_time_s": pending,
            "pending_saved": None if pending is None else found is not None,
            "hook_leftovers": {pg: processes_in_group(pg) for pg in self.hook_pgids},
        }

    def close(self) -> None:
        self._wd_stop.set()
        with contextlib.suppress(Exception):
            self.feeder.stop()
        self.daemon.close()
        self.mic.close()
        self.notify.close()
        self.disk.close(keep_to=self.out / "saves")
        for pg in self.hook_pgids:  # never leave a hung hook behind, even when the daemon failed to
            for pid in processes_in_group(pg):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def run(args: argparse.Namespace, s: Settings, command: str) -> dict:
    from bench.soakreport import analyse, write
    from device.engine import Engine, EngineError

    build = args.build or Path("build") / args.keyword
    model = resolve_model(args, build)
    try:
        meta = Engine.load(str(model)).meta
    except EngineError as exc:
        raise SoakError(str(exc)) from None
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in meta.keyword) or "keyword"
    if args.build is None:
        build = Path("build") / safe  # the model's own keyword
    source = keyword_audio(args, build, meta.keyword)
    out = args.out or build / "soak"
    out.mkdir(parents=True, exist_ok=True)
    step_s = meta.params.infer_every_s
    faults = plan_faults(s.minutes * 60, s, step_s)
    wav = out / "soak.wav"
    log.info("writing %.1f min of %s audio -> %s", s.minutes, meta.keyword, wav)
    events = make_audio(source, s, wav)
    log.info(
        "offline reference: the same WAV through `wakeword listen --input`, at offsets of %s ms",
        ", ".join(map(str, OFFSETS_MS)),
    )
    reference = offline_reference(model, wav, out)
    soak = Soak(s, out, model, wav, step_s)
    wall0 = time.time()
    try:
        soak.start()
        soak.run_faults(faults)
        saves = soak.check_saves()
    finally:
        soak.close()
        if not args.keep_audio:
            wav.unlink(missing_ok=True)
    result = analyse(s, meta, model, events, reference, soak, faults, saves, step_s)
    result.update(
        command=command,
        started=time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(wall0)),
        wall_min=round((time.time() - wall0) / 60, 2),
        code=soak.code,
    )
    result["report"] = str(write(result, out))
    return result
