"""The soak's figures (:func:`analyse`) and its report (:func:`write`: ``soak-report.md`` + ``soak.json``).

Times are seconds of soak audio: 0 is when its first sample was played, and the microphone plays
in real time, so a detection line that reaches the bench at ``t`` was acted on ``t - end`` after
its keyword ended (plus the ~40 ms the player holds; :func:`daemon_lateness` is a measure the
sound path cannot skew).

- A keyword is **audible** when the offline reference runs (the same WAV through ``--input``, its
  frames started at each offset of ``bench.soakrun.OFFSETS_MS``) all detected it; it is
  **expected** when also clear of every outage: from ``stale_after_s`` + one step before a stall,
  overrun, device loss, wedge, crash or a gap of the rig's own (audio its player could not take in
  time) to ``settle_s`` after the daemon hears again.
- A detection **matches** the latest keyword that began before it arrived. It is **late** when it
  is that keyword's first and arrives more than ``tolerance_s`` (``stale_after_s`` + one step + 1 s)
  after it ended -- what the stale-audio rule exists to prevent -- and **unexpected** when it matches
  nothing new: before any keyword, or after its keyword was already heard, however long after (a
  real model may fire on the speech around a keyword; the offline reference counts the same way).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from device.fsutil import atomic_write_text

WATCHDOG_SEC = 30.0
"""deploy/wakeword.service's WatchdogSec: a loop silent for half of it is in trouble."""
RSS_LIMIT_MIB_PER_H = 1.0


def _outages(soak, faults, lead_s: float, settle_s: float) -> list[tuple[float, float, str]]:
    out = [
        (f.start_s - lead_s, f.end_s + settle_s, f.kind)
        for f in faults
        if f.outage and f.start_s is not None and f.end_s is not None
    ]
    # the rig's own gaps: audio the player could not take in time (merged when close together)
    gaps: list[list[float]] = []
    for at, dur in getattr(soak.mic, "drops", []):
        a, b = at - soak.t0, at - soak.t0 + dur
        if gaps and a <= gaps[-1][1] + 1.0:
            gaps[-1][1] = max(gaps[-1][1], b)
        else:
            gaps.append([a, b])
    out += [(a - lead_s, b + settle_s, "rig") for a, b in gaps]
    readies = [t - soak.t0 for t in soak.notify.log.times("READY=1")]
    for e in soak.daemon.exits:
        if not e.asked:  # a crash, or the watchdog's abort: deaf until the new process is READY
            at = e.at - soak.t0
            back = next((r for r in readies if r > at), float("inf"))
            out.append((at - lead_s, back + settle_s, e.cause))
    return out


def match(events, arrivals: list[float], tolerance_s: float):
    """-> (matched {event index: latency_s}, late [(event index, latency_s)], unexpected [arrival_s])."""
    starts = np.array([e.start_s for e in events])
    matched, late, unexpected = {}, [], []
    heard: set[int] = set()
    for arr in sorted(arrivals):
        i = int(np.searchsorted(starts, arr, side="right")) - 1
        if i < 0:
            unexpected.append(arr)
            continue
        latency = arr - events[i].end_s
        if i in heard:
            unexpected.append(arr)
        elif latency > tolerance_s:
            late.append((i, latency))
        else:
            matched[i] = latency
        heard.add(i)
    return matched, late, unexpected


def _longest_lived(samples) -> int | None:
    """The daemon process with the most samples (a restart starts a new memory record)."""
    counts: dict[int, int] = {}
    for x in samples:
        counts[x.pid] = counts.get(x.pid, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def daemon_lateness(detections, session_starts: Sequence[float] = (), window_s: float = 600.0) -> list[float]:
    """How late each detection is by the daemon's own clock, whatever the sound path did: the gap
    between its arrival and its stream time (``at - time_s``), above the smallest such gap of the
    same process and device session within ``window_s`` (its punctual detections). A loop stepping
    old audio shows here; audio that reached the daemon late (the rig) does not. Across a reconnect
    stream time restarts from the moment the device reopened, not from its first audio (a sound
    server may deliver that later: 1.2-1.5 s apart here, measured), so each session -- from a
    ``listening on`` line at ``session_starts`` -- has its own baseline."""
    starts = sorted(session_starts)

    def key(d) -> tuple[int, int]:
        return d.pid, bisect.bisect_right(starts, d.at)

    gaps = [d.at - d.time_s for d in detections]
    out = []
    for d, g in zip(detections, gaps):
        near = [h for e, h in zip(detections, gaps) if key(e) == key(d) and abs(e.at - d.at) <= window_s]
        out.append(g - min(near))
    return out


def _rss(samples, from_at: float, to_at: float, field: str = "rss_kib") -> dict:
    """Growth of one memory figure of the longest-lived process (``rss_kib``: VmRSS; ``anon_kib``:
    RssAnon, what the memory criterion judges)."""
    pid = _longest_lived(samples)
    pts = [(x.at, getattr(x, field) / 1024) for x in samples if x.pid == pid and from_at <= x.at <= to_at]
    if len(pts) < 2:
        return {"samples": len(pts)}
    t = np.array([a for a, _ in pts])
    mib = np.array([b for _, b in pts])
    hours = (t - t[0]) / 3600
    slope = float(np.polyfit(hours, mib, 1)[0]) if hours[-1] > 0 else 0.0
    every = max(1, len(pts) // 200)
    series = [[round(float(a - t[0]), 1), round(float(b), 2)] for a, b in zip(t[::every], mib[::every])]
    return {
        "samples": len(pts),
        "series_s_mib": series,
        "start_mib": round(float(mib[0]), 2),
        "end_mib": round(float(mib[-1]), 2),
        "max_mib": round(float(mib.max()), 2),
        "span_h": round(float(hours[-1]), 3),
        "growth_mib_per_h": round(slope, 3),
        "end_minus_start_per_h": round(float((mib[-1] - mib[0]) / hours[-1]), 3) if hours[-1] > 0 else None,
    }


def _cpu(samples, exits, from_at: float, to_at: float, audio_h: float) -> dict:
    pid = _longest_lived(samples)
    pts = [(x.at, x.cpu_s) for x in samples if x.pid == pid and from_at <= x.at <= to_at]
    out = {"cpu_s_total": round(sum(e.cpu_s for e in exits), 2)}
    if audio_h > 0:
        out["cpu_s_per_audio_h_total"] = round(out["cpu_s_total"] / audio_h, 1)
    if len(pts) >= 2 and pts[-1][0] > pts[0][0]:
        out["cpu_s_per_audio_h"] = round((pts[-1][1] - pts[0][1]) / ((pts[-1][0] - pts[0][0]) / 3600), 1)
    return out


def _watchdog(soak, faults) -> dict:
    pings = soak.notify.log.times("WATCHDOG=1")
    quiet = [
        (soak.t0 + f.start_s, soak.t0 + f.end_s + 1.0)
        for f in faults
        if f.kind in ("stall", "overrun", "wedged_device") and f.start_s is not None
    ]
    quiet += [(e.at - 5.0, e.at + 60.0) for e in soak.daemon.exits]  # a restart, or the end
    gaps = [(b - a, a) for a, b in zip(pings, pings[1:]) if not any(qa < b and a < qb for qa, qb in quiet)]
    worst = max(gaps, default=(0.0, 0.0))
    return {
        "pings": len(pings),
        "ready": len(soak.notify.log.times("READY=1")),
        "stopping": len(soak.notify.log.times("STOPPING=1")),
        "max_gap_s_outside_stalls": round(worst[0], 3),
        "max_gap_at_s": round(worst[1] - soak.t0, 1),
    }


def _status(soak) -> dict:
    statuses = soak.notify.log.statuses()
    last = statuses[-1][1] if statuses else ""
    dropped = [float(m.group(1)) for _, s in statuses for m in [re.search(r"dropped ([0-9.]+) s", s)] if m]
    overruns = [int(m.group(1)) for _, s in statuses for m in [re.search(r"(\d+) ALSA overruns", s)] if m]
    return {
        "last": last,
        "dropped_s": max(dropped, default=0.0),
        "alsa_overruns": max(overruns, default=0),
        "messages": len(statuses),
    }


def heard_offline(events, reference: list[list[float]], tolerance_s: float) -> list[list[bool]]:
    """For each event, whether each offline run (one per frame offset) detected it: a detection
    from its start to ``tolerance_s`` after its end."""
    runs = [np.array(sorted(r)) for r in reference]
    return [[bool(np.any((r >= e.start_s) & (r <= e.end_s + tolerance_s))) for r in runs] for e in events]


def offset_spread(heard: list[list[bool]], keys: list[int]) -> list[int]:
    """For each offline run (one per frame offset): how many of the keywords ``keys`` that every
    *other* run detected this one missed. What one more offset -- the live run's, which no offline run
    can fix in advance -- may miss by its frame offset alone (none for a model whose scores are all or
    nothing, like the tone model's); a single run gives no spread."""
    runs = len(heard[0]) if heard else 0
    if runs < 2:
        return [0] * runs
    return [
        sum(all(h for j, h in enumerate(heard[i]) if j != k) and not heard[i][k] for i in keys) for k in range(runs)
    ]


def analyse(
    s, meta, model: Path, events, reference: list[list[float]], soak, faults, saves: dict, step_s: float
) -> dict:
    duration_s = s.minutes * 60
    tolerance_s = s.stale_after_s + step_s + 1.0
    lead_s = s.stale_after_s + step_s
    outages = _outages(soak, faults, lead_s, s.settle_s)
    end_s = next((f.start_s for f in faults if f.kind == "sigterm_mid_save" and f.start_s is not None), duration_s)
    heard = heard_offline(events, reference, tolerance_s)
    audible = [all(h) for h in heard]
    ref = np.array(sorted(reference[0]))
    in_outage = [_within(e, outages) for e in events]
    arrivals = [d.at - soak.t0 for d in soak.daemon.detections]
    matched, late, unexpected = match(events, arrivals, tolerance_s)
    own = daemon_lateness(soak.daemon.detections, [at for at, ln in soak.daemon.lines if "listening on" in ln])
    own_late = [(round(a, 3), round(x, 3)) for a, x in zip(arrivals, own) if x > lead_s]
    considered = [i for i, e in enumerate(events) if e.end_s + tolerance_s < end_s]
    expected = [i for i in considered if audible[i] and not in_outage[i]]
    spread = offset_spread(heard, [i for i in considered if not in_outage[i]])
    missed = [i for i in expected if i not in matched]
    rig_lost = [i for i in considered if audible[i] and _within(events[i], outages, "rig")]
    heard_ok, heard_detail, unjudged = hearing_verdict(len(expected), len(missed), spread, len(rig_lost))
    latencies = sorted(matched[i] for i in expected if i in matched)
    ref_matched, _, ref_unexpected = match(events, list(ref), tolerance_s)
    crashes = [e for e in soak.daemon.exits if e.cause == "crash"]
    aborts = [e for e in soak.daemon.exits if e.cause == "watchdog"]
    final = next((e for e in reversed(soak.daemon.exits) if e.asked), None)
    warm_s = min(300.0, 0.1 * duration_s)
    rss = _rss(soak.daemon.samples, soak.t0 + warm_s, soak.t0 + end_s)
    anon = _rss(soak.daemon.samples, soak.t0 + warm_s, soak.t0 + end_s, "anon_kib")
    cpu = _cpu(soak.daemon.samples, soak.daemon.exits, soak.t0 + warm_s, soak.t0 + end_s, end_s / 3600)
    wd = _watchdog(soak, faults)
    status = _status(soak)
    stop_line = next((ln for _, ln in reversed(soak.daemon.lines) if "stopped on signal" in ln), "")
    figures = {
        "events": len(events),
        "considered": len(considered),
        "audible_offline": sum(audible[i] for i in considered),
        "not_heard_offline": sum(not any(heard[i]) for i in considered),
        "heard_at_some_offsets": sum(any(heard[i]) and not audible[i] for i in considered),
        "offline_offsets": len(reference),
        "offset_spread": spread,
        "excluded_outage": sum(in_outage[i] and audible[i] for i in considered),
        "excluded_but_seen": sum(in_outage[i] and audible[i] and i in matched for i in considered),
        "expected": len(expected),
        "seen": len(expected) - len(missed),
        "missed": len(missed),
        "late": len(late),
        "unexpected": len(unexpected),
        "offline_unexpected": len(ref_unexpected),
        "offline_detections": len(ref),
        "live_detections": len(arrivals),
        "latency_s": {"median": _q(latencies, 0.5), "p95": _q(latencies, 0.95), "max": _q(latencies, 1.0)},
        "late_by_own_clock": len(own_late),
        "own_lateness_max_s": round(max(own, default=0.0), 3),
        "tolerance_s": round(tolerance_s, 3),
    }
    judge_rss = s.minutes >= s.judge_rss_min
    growth = anon.get("growth_mib_per_h")
    hook_faults = [f for f in faults if f.kind == "hook_hang"]
    disk_faults = [f for f in faults if f.kind == "full_disk"]
    wedges = [f for f in faults if f.kind == "wedged_device"]
    criteria = [
        _crit(
            "no crash",
            not crashes,
            f"{len(crashes)} crash(es); {len(soak.daemon.starts) - 1} restart(s), "
            f"{len(aborts)} of them by the watchdog",
        ),
        _crit(
            "clean stop on SIGTERM",
            final is not None and final.code == 0 and bool(stop_line),
            f"exit {final.code if final else '-'}; {stop_line.strip()[:140]}",
        ),
        _crit(
            "no late detection",
            not late and not own_late,
            f"{len(late)} late against the audio's schedule (tolerance {tolerance_s:.2f} s), {len(own_late)} "
            f"by the daemon's own clock (more than {lead_s:.2f} s behind the punctual ones of its process and "
            "device session)",
        ),
        _crit(
            "no more unexpected detections than offline",
            len(unexpected) <= len(ref_unexpected),
            f"{len(unexpected)} live, {len(ref_unexpected)} offline (a late detection can also land here)",
        ),
        _crit("every audible keyword detected (up to the frame-offset spread)", heard_ok, heard_detail),
        _crit(
            "memory growth <= 1 MiB/h",
            (growth is not None and growth <= RSS_LIMIT_MIB_PER_H) if judge_rss else None,
            f"{growth} MiB/h of its own memory (RssAnon) over {anon.get('span_h', 0):.2f} h; resident in all "
            f"(VmRSS, with mapped libraries) {rss.get('growth_mib_per_h')} MiB/h"
            + ("" if judge_rss else f" (not judged under {s.judge_rss_min:g} min)"),
        ),
        _crit(
            "device loss recovered",
            all(f.ok for f in faults if f.kind == "device_loss"),
            "; ".join(f.note for f in faults if f.kind == "device_loss"),
        ),
        _crit(
            "hung hook killed, nothing left",
            all(f.ok for f in hook_faults) and not any(saves["hook_leftovers"].values()),
            "; ".join(f.note for f in hook_faults),
        ),
        _crit(
            "full disk survived",
            None if all(f.ok is None for f in disk_faults) else all(f.ok is not False for f in disk_faults),
            "; ".join(f.note for f in disk_faults),
        ),
        _crit(
            "saves whole after SIGTERM mid-save",
            not saves["tmp_left"]
            and not saves["wav_without_json"]
            and not saves["json_without_wav"]
            and saves["pending_saved"] is not False,
            f"{saves['wav']} WAV / {saves['json']} JSON, {len(saves['tmp_left'])} temp file(s), "
            f"{len(saves['wav_without_json'])} WAV without JSON, pending clip "
            f"{'saved' if saves['pending_saved'] else 'MISSING' if saves['pending_saved'] is False else '-'}",
        ),
        _crit(
            "wedged device: watchdog restart, then listening",
            all(f.ok for f in wedges) if wedges else None,
            "; ".join(f.note for f in wedges),
        ),
        _crit(
            "watchdog kept pinging",
            wd["max_gap_s_outside_stalls"] < WATCHDOG_SEC / 2,
            f"{wd['pings']} pings, longest gap outside stalls and wedges {wd['max_gap_s_outside_stalls']} s",
        ),
    ]
    return {
        "model": str(model),
        "keyword": meta.keyword,
        "model_version": meta.model_version,
        "audio_min": round(s.minutes, 2),
        "played_min": round(end_s / 60, 2),
        "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
        "figures": figures,
        "missed": [_ev(events[i]) for i in missed],
        "late": [{**_ev(events[i]), "latency_s": round(x, 3)} for i, x in late],
        "unexpected_at_s": [round(a, 3) for a in unexpected],
        "live_at_s": [round(a, 3) for a in arrivals],
        "keywords_s": [[round(e.start_s, 2), round(e.end_s, 2)] for e in events],
        "late_by_own_clock": own_late,
        "outages": [{"from_s": round(a, 2), "to_s": round(b, 2), "kind": k} for a, b, k in outages],
        "faults": [_fault(f) for f in faults],
        "daemon": {
            "starts": len(soak.daemon.starts),
            "restarts": len(soak.daemon.starts) - 1,
            "crashes": len(crashes),
            "watchdog_aborts": len(aborts),
            "exits": [
                {
                    "at_s": round(e.at - soak.t0, 2),
                    "code": e.code,
                    "cause": e.cause,
                    "cpu_s": round(e.cpu_s, 2),
                    "last_line": e.last_line[:200],
                }
                for e in soak.daemon.exits
            ],
            "stop_line": stop_line.strip(),
        },
        "rss": rss,
        "anon": anon,
        "cpu": cpu,
        "notify": wd,
        "status": status,
        "saves": saves,
        "feeder": {
            "frames_played": soak.feeder.frames_played,
            "frames_lost": soak.feeder.frames_lost,
            "dropped_behind_s": round(soak.mic.overflowed_bytes / 2 / soak.feeder.rate_hz, 2),
        },
        "criteria": criteria,
        "passed": all(c["ok"] is not False for c in criteria),
        "unjudged": unjudged,
    }


def _within(event, outages, kind: str | None = None) -> bool:
    """Whether ``event`` overlaps an outage (of ``kind``, or of any kind)."""
    return any(a <= event.end_s and event.start_s <= b for a, b, k in outages if kind in (None, k))


def hearing_verdict(expected: int, missed: int, spread: list[int], rig_lost: int) -> tuple[bool | None, str, str]:
    """-> (ok, detail, unjudged) of "every audible keyword detected". When the rig's own gaps (audio
    its player could not hand over in time: an overloaded machine) swallowed every audible keyword,
    the run says nothing about the daemon's hearing: not judged, and ``unjudged`` says why (the
    bench then exits 2, as for any run it could not carry out)."""
    if not expected and rig_lost:
        why = (
            f"the rig fell behind its own schedule: its gaps covered all {rig_lost} audible keyword(s), so this "
            "run cannot judge the daemon's hearing (the machine was too busy; run it again on an idle one)"
        )
        return None, why, why
    ok = missed <= max(spread, default=0) and expected > 0
    detail = (
        f"{expected - missed}/{expected} seen; an offline run at one more offset misses up to "
        f"{max(spread, default=0)} that the others hear ({', '.join(map(str, spread))})"
    )
    return ok, detail, ""


def _q(xs: list[float], q: float):
    return round(float(np.quantile(xs, q)), 3) if xs else None


def _ev(e) -> dict:
    return {"start_s": round(e.start_s, 3), "end_s": round(e.end_s, 3)}


def _fault(f) -> dict:
    return {
        "kind": f.kind,
        "planned_s": f.at_s,
        "duration_s": f.duration_s,
        "start_s": None if f.start_s is None else round(f.start_s, 2),
        "end_s": None if f.end_s is None else round(f.end_s, 2),
        "ok": f.ok,
        "note": f.note,
    }


def _crit(name: str, ok: bool | None, detail: str) -> dict:
    return {"name": name, "ok": ok, "detail": detail}


def _mark(ok) -> str:
    return "pass" if ok is True else "**FAIL**" if ok is False else "n/a"


def write(result: dict, out: Path) -> Path:
    """``<out>/soak.json`` and ``<out>/soak-report.md``; returns the report's path."""
    atomic_write_text(out / "soak.json", json.dumps(result, indent=1, default=str) + "\n")
    f, r = result["figures"], result
    lat = f["latency_s"]
    lines = [
        f"# Soak: {r['keyword']!r} for {r['played_min']:.1f} min of live audio",
        "",
        f"`{r['command']}`, started {r['started']}, {r['wall_min']:.1f} min wall clock; "
        f"model `{r['model']}` ({r['model_version']}); daemon code from `{r['code']}`.",
        "",
        f"**{'FAILED' if not r['passed'] else 'NOT JUDGED' if r.get('unjudged') else 'PASSED'}**"
        + (f": {r['unjudged']}" if r["passed"] and r.get("unjudged") else ""),
        "",
        "| criterion | result | detail |",
        "|---|---|---|",
        *[f"| {c['name']} | {_mark(c['ok'])} | {c['detail']} |" for c in r["criteria"]],
        "",
        "## Detections",
        "",
        "| figure | value |",
        "|---|---|",
        f"| keyword events in the audio (before the final SIGTERM) | {f['considered']} |",
        f"| heard by the offline reference run at all {f['offline_offsets']} frame offsets (audible) / at some "
        f"only | {f['audible_offline']} / {f['heard_at_some_offsets']} |",
        f"| excluded: inside an injected outage | {f['excluded_outage']} ({f['excluded_but_seen']} detected anyway) |",
        f"| **expected** / **seen** / **missed** | **{f['expected']} / {f['seen']} / {f['missed']}** |",
        f"| **late** (more than {f['tolerance_s']} s after the keyword ended) | **{f['late']}** |",
        f"| late by the daemon's own clock (stream time vs arrival; max lateness {f['own_lateness_max_s']} s) | "
        f"{f['late_by_own_clock']} |",
        f"| unexpected (matching no new keyword) | {f['unexpected']} (offline run: {f['offline_unexpected']}) |",
        f"| latency after keyword end: median / p95 / max (s) | {lat['median']} / {lat['p95']} / {lat['max']} |",
        "",
        "## Cost",
        "",
        "| figure | value |",
        "|---|---|",
        f"| RSS start / end / max (MiB, after warm-up) | {r['rss'].get('start_mib')} / {r['rss'].get('end_mib')} / "
        f"{r['rss'].get('max_mib')} |",
        f"| RSS growth (least squares over {r['rss'].get('samples')} samples, {r['rss'].get('span_h')} h) | "
        f"{r['rss'].get('growth_mib_per_h')} MiB/h |",
        f"| its own memory (RssAnon: heap, stacks) start / end / max (MiB) | {r['anon'].get('start_mib')} / "
        f"{r['anon'].get('end_mib')} / {r['anon'].get('max_mib')} |",
        f"| **its own memory's growth** (least squares; what the criterion judges) | "
        f"**{r['anon'].get('growth_mib_per_h')} MiB/h** |",
        f"| CPU per audio hour (steady) | {r['cpu'].get('cpu_s_per_audio_h')} s |",
        f"| CPU, whole process life incl. start-up | {r['cpu'].get('cpu_s_total')} s |",
        f"| daemon starts / restarts (by the watchdog) / crashes | {r['daemon']['starts']} / "
        f"{r['daemon']['restarts']} ({r['daemon']['watchdog_aborts']}) / {r['daemon']['crashes']} |",
        f"| sd_notify: READY / WATCHDOG / STOPPING | {r['notify']['ready']} / {r['notify']['pings']} / "
        f"{r['notify']['stopping']} |",
        f"| longest watchdog gap outside stalls and wedges | {r['notify']['max_gap_s_outside_stalls']} s |",
        f"| audio dropped (stale, queue) / ALSA overruns (its STATUS line) | {r['status']['dropped_s']} s / "
        f"{r['status']['alsa_overruns']} |",
        f"| rig: audio the player could not take in time (dropped to stay on schedule) | "
        f"{r['feeder']['dropped_behind_s']} s |",
        "",
        "## Faults",
        "",
        "| fault | planned (s) | began | ended | ok | what happened |",
        "|---|---|---|---|---|---|",
        *[
            f"| {x['kind']} | {x['planned_s']} | {x['start_s']} | {x['end_s']} | {_mark(x['ok'])} | {x['note']} |"
            for x in r["faults"]
        ],
        "",
        f"Missed: {r['missed'][:20] or 'none'}. Late: {r['late'][:20] or 'none'}. "
        f"Unexpected at: {r['unexpected_at_s'][:20] or 'none'}.",
        "",
        f"Last STATUS: `{r['status']['last']}`",
        "",
        f"Stop: `{r['daemon']['stop_line']}`",
        "",
    ]
    path = out / "soak-report.md"
    atomic_write_text(path, "\n".join(lines))
    return path
