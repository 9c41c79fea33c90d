"""Run independent tasks on all cores, with a progress bar, and stop cleanly on Ctrl-C.

Workers are *spawned* (not forked): they start from a clean interpreter, so no thread pool,
C library state or ONNX session of the parent leaks into them. Each worker ignores SIGINT
(the terminal sends it to the whole process group; the parent decides) and turns SIGTERM
into ``SystemExit``, so the ``atomic_path`` of a file being written removes its temp file
when the parent terminates the pool. With ``workers == 1`` tasks run in this process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from tqdm import tqdm

log = logging.getLogger(__name__)


def worker_count(requested: int) -> int:
    return requested if requested > 0 else (os.cpu_count() or 1)


def _init_worker(init: Callable[..., None] | None, args: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # One thread per worker (the workers already use every core); read by torch/numpy at import.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = "1"
    if init is not None:
        init(*args)


def imap(
    fn: Callable[[Any], Any],
    tasks: Iterable[Any],
    workers: int,
    desc: str,
    total: int,
    unit: str = "task",
    init: Callable[..., None] | None = None,
    init_args: tuple = (),
    weight: Callable[[Any], int] = lambda _: 1,
) -> Iterator[Any]:
    """Yield ``fn(task)`` for every task (in completion order) while a tqdm bar counts them.

    ``init(*init_args)`` runs once per worker (and once here when ``workers == 1``);
    ``weight(result)`` is how far one result moves the bar.
    """
    tasks = list(tasks)
    # Not a terminal (a log file, CI): fewer updates, but still a trace of progress.
    interactive = sys.stderr.isatty()
    bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, mininterval=0.1 if interactive else 30)
    try:
        if workers <= 1 or len(tasks) <= 1:
            if init is not None:
                init(*init_args)
            for task in tasks:
                result = fn(task)
                bar.update(weight(result))
                yield result
            return
        ctx = multiprocessing.get_context("spawn")
        pool = ctx.Pool(min(workers, len(tasks)), initializer=_init_worker, initargs=(init, init_args))
        try:
            for result in pool.imap_unordered(fn, tasks):
                bar.update(weight(result))
                yield result
            pool.close()
        except BaseException:
            pool.terminate()  # SIGTERM: workers drop their temp files on the way out
            raise
        finally:
            pool.join()
    finally:
        bar.close()
