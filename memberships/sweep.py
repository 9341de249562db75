"""One tick of the durable timers, the scheduler's work: expire due retention periods
(``memberships.retention``), re-drive lost work and count overdue removals
(``memberships.redrive``), fan out undispatched events and send due webhook deliveries
(``memberships.webhook_delivery``), send again the mail that is due
(``memberships.notices``), mark removal requests past their deadline overdue
(``memberships.removal_requests``), forget expired idempotency keys
(``memberships.idempotency``). Each part commits batch by batch; a tick is safe to run in
several processes at once on PostgreSQL (each row is taken by one sweeper only).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from memberships.clock import Clock
from memberships.idempotency import forget_expired_idempotency_keys
from memberships.notices import forget_old_notices, redrive_mail
from memberships.redrive import count_overdue_removals, redrive_stalled
from memberships.removal_requests import count_overdue, mark_overdue_requests
from memberships.retention import expire_due_retentions, expire_in_parallel
from memberships.webhook_delivery import fan_out, redrive_due
from store.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did; ``overdue_removals`` is the alert, not an action."""

    tick_id: str
    expired: int
    batches: int
    redriven: dict[str, int] = field(default_factory=dict)
    overdue_removals: int = 0
    forgotten_keys: int = 0
    mail_redriven: int = 0
    """Pending mail sent to the ``mail`` queue again: its back-off is over, or its message
    was lost."""
    forgotten_notices: int = 0
    """Notices of purged memberships past the 30 days the member is shown them."""
    seconds: float = 0.0
    events_dispatched: int = 0
    deliveries_sent: int = 0
    overdue_requests_marked: int = 0
    """Removal requests this tick found past their deadline and marked overdue (once each)."""
    overdue_removal_requests: int = 0
    """Open removal requests past their deadline: the organizations' alert."""


def new_tick_id() -> str:
    """The id a sweep writes into its audit rows and messages, like a request id."""
    return f"sweep-{uuid.uuid4().hex[:16]}"


def sweep(
    uow: UnitOfWork,
    clock: Clock,
    *,
    should_continue: Callable[[], bool] = lambda: True,
    open_uow: Callable[[], UnitOfWork] | None = None,
    concurrency: int = 1,
) -> SweepReport:
    """One tick of the durable timers: expire due retention periods, re-drive stalled work,
    count overdue removals, forget expired idempotency keys. Commits batch by batch; safe
    to run in several processes at once on PostgreSQL (each row is taken by one sweeper
    only).

    With ``open_uow`` and ``concurrency`` > 1 on PostgreSQL, due retention periods are
    expired on that many connections at once (``expire_in_parallel``).

    ``should_continue`` is asked between batches, so a stopping scheduler finishes the
    batch in hand and leaves the rest to the next sweeper.
    """
    started = time.perf_counter()
    tick_id = uow.request_id or new_tick_id()
    uow.request_id = tick_id
    if open_uow is not None and concurrency > 1 and uow.batches.claims_in_parallel():
        expired, batches = expire_in_parallel(
            uow, clock, open_uow, concurrency, should_continue=should_continue
        )
    else:
        expired, batches = expire_due_retentions(uow, clock, should_continue=should_continue)
    redriven = redrive_stalled(uow, clock, should_continue=should_continue)
    events, _made = fan_out(uow, clock, should_continue=should_continue)
    deliveries = redrive_due(uow, clock, should_continue=should_continue)
    overdue = count_overdue_removals(uow, clock())
    uow.rollback()
    marked = mark_overdue_requests(uow, clock, should_continue=should_continue)
    overdue_requests = count_overdue(uow, clock())
    uow.rollback()
    mail = redrive_mail(uow, clock)
    old_notices = forget_old_notices(uow, clock)
    forgotten = forget_expired_idempotency_keys(uow, clock, should_continue=should_continue)
    return SweepReport(
        tick_id=tick_id,
        expired=expired,
        batches=batches,
        redriven=redriven,
        overdue_removals=overdue,
        forgotten_keys=forgotten,
        mail_redriven=mail,
        forgotten_notices=old_notices,
        seconds=time.perf_counter() - started,
        events_dispatched=events,
        deliveries_sent=deliveries,
        overdue_requests_marked=marked,
        overdue_removal_requests=overdue_requests,
    )
