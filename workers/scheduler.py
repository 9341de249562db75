"""The scheduler process: ticks the sweep every ``SWEEP_INTERVAL`` until told to stop.

It runs the sweep itself rather than sending ``sweep`` messages, so due timers
fire even while the broker is down (their follow-up messages are then lost and
re-driven by a later tick). Several schedulers may run at once on PostgreSQL:
each sweep claims its rows with ``SKIP LOCKED``. On SQLite one is enough.

SIGTERM and SIGINT stop it cleanly: the batch in hand is committed and the
process exits 0, which is what honcho and process managers expect.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType

from memberships.sweep import SweepReport
from settings import Settings
from workers import logs
from workers.dispatch import broker_dispatcher
from workers.runtime import Runtime
from workers.sweeper import run_sweep

log = logging.getLogger(__name__)


class Scheduler:
    """Calls ``tick`` every ``interval`` (measured start to start) until ``stop``."""

    def __init__(
        self,
        tick: Callable[[Callable[[], bool]], SweepReport],
        interval: timedelta,
    ) -> None:
        self.tick = tick
        self.interval = interval.total_seconds()
        self._stopping = threading.Event()
        self.ticks = 0
        self.failures = 0

    def stop(self) -> None:
        self._stopping.set()

    @property
    def running(self) -> bool:
        return not self._stopping.is_set()

    def run(self, max_ticks: int | None = None) -> None:
        """Tick until stopped (or ``max_ticks`` ticks). A failing tick is logged and the
        next one tried on time: a database restart must not kill the timers."""
        log.info("scheduler started", extra={"interval_seconds": self.interval})
        while self.running and (max_ticks is None or self.ticks < max_ticks):
            started = time.monotonic()
            try:
                self.tick(lambda: self.running)
            except Exception:
                self.failures += 1
                log.exception("sweep failed; trying again next tick")
            self.ticks += 1
            self._stopping.wait(max(0.0, self.interval - (time.monotonic() - started)))
        log.info("scheduler stopped", extra={"ticks": self.ticks, "failures": self.failures})


def install_signal_handlers(scheduler: Scheduler) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        scheduler.stop()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)


def run_scheduler(settings: Settings, max_ticks: int | None = None) -> Scheduler:
    """The ``lifecycle scheduler`` process: JSON logs, the sweep on this process's
    database and broker, until SIGTERM or SIGINT."""
    logs.configure()
    runtime = Runtime(settings, broker_dispatcher(settings))
    scheduler = Scheduler(
        lambda should_continue: run_sweep(runtime, should_continue=should_continue),
        settings.sweep_interval,
    )
    install_signal_handlers(scheduler)
    scheduler.run(max_ticks)
    return scheduler
