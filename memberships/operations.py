"""The operators' view of the durable timers, read from the database that holds them.

``lifecycle timers``, ``GET /v1/ops/timers`` and the metrics all read here, so
they agree. Nothing here changes anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from memberships.clock import Clock
from memberships.decisions import require_operator
from memberships.principal import Principal
from memberships.removal_requests import count_overdue, overdue_list
from statemachines.membership import EVENTS, IN_PROGRESS, MembershipState
from store.models import Membership
from store.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class TimerEntry:
    """One membership in a timer list: what is due, since when, and how it is going."""

    membership_id: str
    organization_id: str
    state: str
    due_at: datetime | None
    last_progress_at: datetime | None
    removed_rows: int
    attempts: int
    last_error: str | None


@dataclass(frozen=True, slots=True)
class TimersReport:
    """Where every timer stands at ``now``.

    - ``overdue_purges``: soft-deleted past ``purge_due_at``, not yet taken by the sweep
      (more than a sweep interval's worth means the scheduler is not running).
    - ``overdue_removals``: purge-pending past ``removal_due_by`` (the window was missed).
    - ``stalled``: in progress with no progress for ``redrive_after`` (the sweep re-drives
      them; a count that stays high means the workers are down or failing).
    - ``failing``: in progress with at least one recorded failed attempt.
    - ``waiting_on_apps``: purge-pending with a connected app that has not confirmed the
      removal; ``waiting_on_apps_overdue``: those of them past ``removal_due_by`` (an app
      that never confirms keeps a membership here, never silently purged).
    - ``overdue_removal_requests``: members' removal requests still open past their
      ``due_by`` (the organization missed its deadline to answer).
    """

    now: datetime
    by_state: dict[str, int]
    overdue_purges: int
    overdue_removals: int
    stalled: dict[str, int]
    failing: int
    next_due_purges: tuple[TimerEntry, ...]
    overdue_removal_list: tuple[TimerEntry, ...]
    oldest_leave_pending: TimerEntry | None
    waiting_on_apps: int = 0
    waiting_on_apps_overdue: int = 0
    overdue_removal_requests: int = 0
    overdue_removal_request_list: tuple[RequestTimerEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class RequestTimerEntry:
    """One removal request past its deadline."""

    request_id: str
    membership_id: str
    organization_id: str
    due_by: datetime
    overdue_at: datetime | None


def _entry(m: Membership, due_at: datetime | None) -> TimerEntry:
    return TimerEntry(
        membership_id=m.id,
        organization_id=m.organization_id,
        state=m.state,
        due_at=due_at,
        last_progress_at=m.last_progress_at,
        removed_rows=m.removed_rows,
        attempts=m.attempts,
        last_error=m.last_error,
    )


def count_by_state(uow: UnitOfWork) -> dict[str, int]:
    """Memberships per stored state, every state present (zero included)."""
    counts = {state.value: 0 for state in MembershipState}
    counts.update(uow.listings.count_by_state())
    return counts


def due_and_overdue(uow: UnitOfWork, now: datetime) -> dict[str, int]:
    """The timer gauges: purges past due (not yet swept), removals past their window, and
    removals waiting on connected apps (all, and past their window), and removal requests
    past their deadline."""
    waiting, waiting_overdue = uow.deliveries.count_waiting_on_apps(now)
    return {
        "overdue_removal_requests": count_overdue(uow, now),
        "overdue_purges": uow.listings.count_overdue_purges(now),
        "overdue_removals": uow.batches.count_overdue_removals(now),
        "waiting_on_apps": waiting,
        "waiting_on_apps_overdue": waiting_overdue,
    }


def stalled_and_failing(uow: UnitOfWork, now: datetime) -> dict[str, int]:
    """In-progress work with no progress for ``redrive_after`` (``stalled:<state>``), and
    in-progress work with recorded failures (``failing``)."""
    stalled_before = now - uow.policy.redrive_after
    counts = {
        f"stalled:{state}": uow.listings.count_stalled(state, stalled_before)
        for state in IN_PROGRESS
    }
    counts["failing"] = uow.listings.count_failing(IN_PROGRESS)
    return counts


def timers_report(
    uow: UnitOfWork, clock: Clock, principal: Principal, *, limit: int = 5
) -> TimersReport:
    """Memberships by state, the next ``limit`` due purges, overdue purges and removals,
    stalled and failing work, and the oldest ``leave-pending``.

    Raises ``Forbidden`` unless ``principal`` is a platform operator (or the service).
    """
    require_operator(uow, principal)
    now = clock()
    work = stalled_and_failing(uow, now)
    next_due = uow.listings.next_due_purges(limit)
    overdue = uow.listings.overdue_removals(now, limit)
    oldest_leave = uow.listings.oldest_leave_pending()
    gauges = due_and_overdue(uow, now)
    overdue_requests = overdue_list(uow, now, limit)
    return TimersReport(
        now=now,
        by_state=count_by_state(uow),
        overdue_purges=gauges["overdue_purges"],
        overdue_removals=gauges["overdue_removals"],
        stalled={state: work[f"stalled:{state}"] for state in IN_PROGRESS},
        failing=work["failing"],
        next_due_purges=tuple(_entry(m, m.purge_due_at) for m in next_due),
        overdue_removal_list=tuple(_entry(m, m.removal_due_by) for m in overdue),
        oldest_leave_pending=(
            _entry(oldest_leave, oldest_leave.leave_requested_at) if oldest_leave else None
        ),
        waiting_on_apps=gauges["waiting_on_apps"],
        waiting_on_apps_overdue=gauges["waiting_on_apps_overdue"],
        overdue_removal_requests=gauges["overdue_removal_requests"],
        overdue_removal_request_list=tuple(
            RequestTimerEntry(r.id, r.membership_id, r.organization.id, r.due_by, r.overdue_at)
            for r in overdue_requests
        ),
    )


def transitions_by_event(uow: UnitOfWork) -> dict[str, int]:
    """Allowed transitions ever made, per lifecycle event, counted from the audit log.

    The audit log is shared by every process, so this is a counter that is right under
    any number of web and worker processes (and survives their restarts).
    """
    counts = dict.fromkeys(EVENTS, 0)
    counts.update(uow.listings.count_allowed_by_action(EVENTS))
    return counts
