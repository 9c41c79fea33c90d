"""What the daemon's steps of varying length do to its memory: ``python -m bench.stepmemory``.

A live step covers whatever audio arrived since the last one, so its length varies, and after a
stall the daemon steps over a backlog seconds long. This runs one model the way the daemon does:
rounds of 0.48 s steps, each round ending in one backlog step of a random length, with
``malloc_trim`` after each round (as ``device.heap`` does once a minute), and prints how much of
the process's own memory (RssAnon) each setting keeps after the rounds: the engine as the daemon
loads it (:meth:`device.engine.Engine.load`: no memory arena, per-shape memory plans on), the same
with the arena on too (onnxruntime's defaults), and with neither. It also prints the CPU per
0.48 s step of each.

Each setting runs in a fresh process (a memory arena, once grown, stays grown in the process).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from bench.soakrig import proc_mem_kib

WARM_STEPS = 50


def _rss_anon_kib() -> int:
    mem = proc_mem_kib(os.getpid())
    return mem[1] if mem is not None else 0


SETTINGS = {
    # name: (memory arena, per-shape memory plans) over the daemon's options (None: as they are), label
    "daemon": (None, "engine as the daemon loads it"),
    "arena": ((True, True), "the same with the memory arena on too"),
    "neither": ((False, False), "the same with the memory plans off too"),
}


def measure(model: Path, rounds: int, max_backlog_s: float, setting: str, seed: int = 0) -> dict:
    """One setting, in this process: RssAnon kept (KiB) after every round, and CPU ms per 0.48 s step."""
    from device.engine import Engine, session_options

    opts = session_options(1)
    override = SETTINGS[setting][0]
    if override is not None:
        opts.enable_cpu_mem_arena, opts.enable_mem_pattern = override
    engine = Engine.load(model, opts=opts)
    hop = engine.params.output_hop_samples
    rate = engine.params.sample_rate
    rng = np.random.default_rng(seed)
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)

    def step(seconds: float) -> None:
        n = max(1, round(seconds * rate / hop)) * hop
        engine.step((rng.standard_normal(n) * 0.05).astype(np.float32))

    for _ in range(WARM_STEPS):
        step(0.48)
    if trim is not None:
        trim(0)
    start = _rss_anon_kib()
    kept = []
    cpu_s, steps = 0.0, 0
    for _ in range(rounds):
        c0 = time.process_time()
        for _ in range(40):
            step(0.48)
        cpu_s, steps = cpu_s + time.process_time() - c0, steps + 40
        step(float(rng.uniform(0.5, max_backlog_s)))
        if trim is not None:
            trim(0)
        kept.append(_rss_anon_kib() - start)
    return {"kept_kib": kept, "cpu_ms_per_step": round(1000 * cpu_s / steps, 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stepmemory", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="model.onnx")
    ap.add_argument("--rounds", type=int, default=40, help="rounds of 40 steps of 0.48 s and one backlog (default 40)")
    ap.add_argument("--max-backlog-s", type=float, default=12.0, help="longest backlog step (s; default 12)")
    ap.add_argument("--one", choices=tuple(SETTINGS), help=argparse.SUPPRESS)  # the child's part
    args = ap.parse_args(argv)
    if not args.model.is_file():
        print(f"bench.stepmemory: {args.model} does not exist", file=sys.stderr)
        return 2
    if args.rounds < 1 or not 0.5 < args.max_backlog_s <= 60:
        print("bench.stepmemory: --rounds >= 1 and --max-backlog-s in (0.5, 60]", file=sys.stderr)
        return 2
    if args.one:
        print(json.dumps(measure(args.model, args.rounds, args.max_backlog_s, args.one)))
        return 0
    print(f"{args.rounds} rounds of 40 x 0.48 s steps + one backlog step of 0.5-{args.max_backlog_s:g} s; {args.model}")
    for setting, (_, label) in SETTINGS.items():
        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.stepmemory",
                "--model",
                str(args.model),
                "--rounds",
                str(args.rounds),
                "--max-backlog-s",
                str(args.max_backlog_s),
                "--one",
                setting,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode != 0:
            print(f"bench.stepmemory: the {setting} run failed: {out.stderr.strip()[-500:]}", file=sys.stderr)
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        k = r["kept_kib"]
        every = max(1, len(k) // 8)
        print(
            f"  {label:<44} RssAnon kept: {k[-1]:>7} KiB after {len(k)} rounds "
            f"(every {every}: {k[every - 1 :: every]}); CPU {r['cpu_ms_per_step']} ms per 0.48 s step"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
