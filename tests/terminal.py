"""Start a child as a terminal would, so that Ctrl-C (SIGINT) reaches it as it reaches a user's run.

A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored
(no KeyboardInterrupt). When the test run itself was started that way (``cmd &``, nohup, some CI
runners), a child that inherits it would shrug off the SIGINT a Ctrl-C test sends. Pass
``preexec_fn=sigint_default`` to ``subprocess.Popen`` in such tests, or start the child with
:func:`start_job` and interrupt it with :func:`ctrl_c`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


def sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_job(cmd: list[str], cwd: Path) -> subprocess.Popen:
    """``cmd`` started as a terminal starts a job: in a process group of its own (so :func:`ctrl_c`
    reaches it and its workers, never the test run) with SIGINT at its default; its stdout and
    stderr together, as text."""
    return subprocess.Popen(
        cmd,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=sigint_default,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def ctrl_c(proc: subprocess.Popen) -> None:
    """What a terminal's Ctrl-C does: SIGINT to the whole process group of ``proc``."""
    os.killpg(proc.pid, signal.SIGINT)
