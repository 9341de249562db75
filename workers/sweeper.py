"""One sweep of the durable timers, as the scheduler, the ``sweep`` actor and
``lifecycle sweep`` run it: open a unit of work, call the use case, log what it did."""

from __future__ import annotations

import logging
from collections.abc import Callable

from memberships.sweep import SweepReport, sweep
from workers.logs import log_context
from workers.runtime import Runtime

log = logging.getLogger(__name__)


def run_sweep(
    runtime: Runtime,
    request_id: str | None = None,
    should_continue: Callable[[], bool] = lambda: True,
) -> SweepReport:
    """Expire due retention periods (on ``SWEEP_CONCURRENCY`` connections at once on
    PostgreSQL), re-drive stalled work, count overdue removals, forget expired
    idempotency keys.

    Overdue removals are logged as a warning on every tick until they are done: the
    removal window is a promise to the guest, and missing it must not go unseen.
    Raises what the database raises (the scheduler logs it and tries next tick).
    """
    with runtime.uow(request_id) as uow:
        report = sweep(
            uow,
            runtime.clock,
            should_continue=should_continue,
            open_uow=runtime.uow,
            concurrency=runtime.settings.sweep_concurrency,
        )
    with log_context(request_id=report.tick_id):
        fields = {
            "expired": report.expired,
            "batches": report.batches,
            "redriven": dict(report.redriven),
            "overdue_removals": report.overdue_removals,
            "forgotten_keys": report.forgotten_keys,
            "events_dispatched": report.events_dispatched,
            "deliveries_sent": report.deliveries_sent,
            "overdue_requests_marked": report.overdue_requests_marked,
            "overdue_removal_requests": report.overdue_removal_requests,
            "mail_redriven": report.mail_redriven,
            "forgotten_notices": report.forgotten_notices,
            "seconds": round(report.seconds, 3),
        }
        moved_on = (
            report.expired
            or any(report.redriven.values())
            or report.mail_redriven
            or report.events_dispatched
            or report.deliveries_sent
        )
        if moved_on or report.overdue_requests_marked:
            log.info("sweep moved memberships on", extra=fields)
        else:
            log.debug("sweep found nothing due", extra=fields)
        if report.overdue_removals:
            log.warning("data removals past their window", extra=fields)
        if report.overdue_removal_requests:
            log.warning("removal requests past their deadline", extra=fields)
    return report
