"""Start a child as a terminal would, so that Ctrl-C (SIGINT) reaches it as it reaches a user's run.

A shell starts background jobs with SIGINT ignored, and Python keeps an ignored SIGINT ignored
(no KeyboardInterrupt). When the test run itself was started that way (``cmd &``, nohup, some CI
runners), a child that inherits it would shrug off the SIGINT a Ctrl-C test sends. Pass
``preexec_fn=sigint_default`` to ``subprocess.Popen`` in such tests.
"""

from __future__ import annotations

import signal


def sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
