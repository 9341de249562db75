"""One stop request is one stop, however many times it is delivered.

Dramatiq's worker process treats its first SIGTERM as "finish what you hold and
stop" and a second one as "exit now". Process managers that signal a whole
process group (honcho for ``make run``, systemd's default ``KillMode``) deliver
the stop twice within milliseconds: once directly, once forwarded by the dramatiq
parent. The worker would then drop the messages it holds (safe, since the sweep
re-drives them, but not clean). Here a repeat within ``ECHO_WINDOW_SECONDS`` of the
first is taken for the same request; a later one still means "exit now".
"""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType
from typing import Any

ECHO_WINDOW_SECONDS = 1.0


def ignore_echoed_sigterm(window: float = ECHO_WINDOW_SECONDS) -> bool:
    """Wrap this process's SIGTERM handler; ``False`` when there is none to wrap (not the
    main thread, or no Python handler installed)."""
    if threading.current_thread() is not threading.main_thread():
        return False
    previous: Any = signal.getsignal(signal.SIGTERM)
    if not callable(previous):
        return False
    first: float | None = None

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal first
        now = time.monotonic()
        if first is not None and now - first < window:
            return
        if first is None:
            first = now
        previous(signum, frame)

    signal.signal(signal.SIGTERM, handler)
    return True
