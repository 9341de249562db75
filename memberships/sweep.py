"""The durable timers: claim due memberships in batches and move them on, set-based.

The database holds every due time; the sweep is what makes them happen. Each
batch is one transaction: claim up to ``sweep_batch_size`` due rows (on
PostgreSQL with ``FOR NO KEY UPDATE SKIP LOCKED``, so several sweepers share the
work and never take the same row), apply the lifecycle transition to the whole
batch with one UPDATE, write the audit rows with one INSERT, commit, and only
then send the follow-up work. On PostgreSQL the claim, the UPDATE and the INSERT
are one statement, so the ids cross to Python once, for the messages. A million
memberships due at once is a few hundred such batches, not a million machines;
a tick works through them on ``SWEEP_CONCURRENCY`` connections at once, since
each batch is bound by one database core (the row's new version and its six
index entries, the audit row and its three), not by Python.

The transition applied is not written here: ``statemachines.membership.transition_table``
asks ``MembershipLifecycle`` itself, once, what each (state, event, kind) leads to,
and a test proves the batch path and ``memberships.decisions.apply_event`` agree
on every one of them.

The sweep also re-drives lost work: a ``leave-pending`` or ``purge-pending``
membership with no progress for ``redrive_after`` has lost its message (a crash
between commit and send, a flushed Redis), so it is sent again and its
``last_progress_at`` touched so the next tick does not send it once more.
Memberships still ``purge-pending`` past ``removal_due_by`` are counted as
*overdue*; they stay in the re-drive, never dropped. Last, expired idempotency
keys are deleted, a bounded number of batches per tick.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    func,
    or_,
    select,
    true,
    update,
)

from memberships.clock import Clock
from memberships.idempotency import forget_expired_keys
from memberships.timers import WORKER
from statemachines.membership import (
    FOLLOW_UP,
    MembershipKind,
    MembershipState,
    entry_fields,
    targets_of,
    transition_table,
)
from store import transitions
from store.database import is_postgresql
from store.models import Membership
from store.transitions import Claimed, Moved, Transition
from store.unit_of_work import UnitOfWork

SOFT_DELETED = MembershipState.SOFT_DELETED.value
EXPIRE = "expire_retention"


def apply_event_to_batch(
    uow: UnitOfWork,
    now: datetime,
    event: str,
    from_state: str,
    rows: Sequence[Claimed],
    *,
    actor: str = WORKER.id,
    progress: Mapping[str, int] | None = None,
) -> list[Moved]:
    """Fire ``event`` on every claimed row in ``from_state``: one UPDATE per target state,
    one INSERT of audit rows, and the follow-up work registered for after the commit.

    The UPDATE is a compare-and-set: it matches each row's id, ``from_state`` and the
    version it was claimed at, so a row that changed since (only possible without row
    locks) is left alone and not audited. Rows whose kind the machine refuses ``event``
    for are skipped. The caller commits.
    """
    table = transition_table()
    by_target: dict[str, list[Claimed]] = defaultdict(list)
    for row in rows:
        target = table.get((from_state, event, row.kind))
        if target is not None:
            by_target[target].append(row)
    moved: list[Moved] = []
    for target, claimed in by_target.items():
        transition = _transition(uow, now, event, actor, from_state, target)
        moved.extend(transitions.move_rows(uow.session, transition, claimed, progress=progress))
    _follow_up_after_commit(uow, moved)
    return moved


def _transition(
    uow: UnitOfWork, now: datetime, event: str, actor: str, from_state: str, target: str
) -> Transition:
    """What every row moved by ``event`` from ``from_state`` to ``target`` gets."""
    return Transition(
        event=event,
        from_state=from_state,
        to_state=target,
        fields=entry_fields(target, now, uow.policy),
        now=now,
        actor=actor,
        request_id=uow.request_id,
    )


def _follow_up_after_commit(uow: UnitOfWork, moved: Sequence[Moved]) -> None:
    """The work each target state needs (``FOLLOW_UP``), sent once the batch commits."""
    follow_ups: dict[str, list[str]] = defaultdict(list)
    for m in moved:
        if m.to_state in FOLLOW_UP:
            follow_ups[FOLLOW_UP[m.to_state]].append(m.id)
    for actor_name, ids in follow_ups.items():
        _send_after_commit(uow, actor_name, ids)


def _send_after_commit(uow: UnitOfWork, actor_name: str, ids: Sequence[str]) -> None:
    request_id = uow.request_id
    uow.on_commit(lambda: uow.dispatcher.send_many(actor_name, ids, request_id))


def _locked(statement: Any) -> Any:
    # SKIP LOCKED lets several sweepers claim disjoint batches on PostgreSQL. NO KEY
    # UPDATE is the strength an UPDATE that keeps the key takes anyway: it still excludes
    # every other decision about the row, but not the inserts of rows that refer to it.
    # SQLite renders no FOR UPDATE: its BEGIN IMMEDIATE already makes each batch exclusive.
    return statement.with_for_update(skip_locked=True, key_share=True)


def _due_purges(
    now: datetime, kinds: Sequence[str], limit: int, due_from: datetime | None = None
) -> Any:
    """Due soft-deleted memberships of ``kinds``, oldest due first (the partial index
    ``ix_memberships_due_purge`` gives that order for free), locked, at most ``limit``;
    from ``due_from`` on when given."""
    return _locked(
        select(Membership.id, Membership.kind, Membership.organization_id, Membership.version)
        .where(
            Membership.state == MembershipState.SOFT_DELETED.value,
            Membership.purge_due_at <= now,
            true() if due_from is None else Membership.purge_due_at >= due_from,
            # Every kind, as today, needs no filter.
            true() if set(kinds) == set(MembershipKind) else Membership.kind.in_(kinds),
        )
        .order_by(Membership.purge_due_at)
        .limit(limit)
    )


def claim_due_purges(uow: UnitOfWork, now: datetime, limit: int) -> list[Claimed]:
    """Up to ``limit`` soft-deleted memberships whose retention period has ended, oldest due
    first, locked for this transaction. Kinds the machine would refuse
    ``expire_retention`` for are never claimed (they would be claimed again forever)."""
    kinds = [k for ks in targets_of(SOFT_DELETED, EXPIRE).values() for k in ks]
    return [
        Claimed(str(row.id), str(row.kind), str(row.organization_id), int(row.version))
        for row in uow.session.execute(_due_purges(now, kinds, limit))
    ]


def _expire_batch_on_postgresql(
    uow: UnitOfWork, now: datetime, limit: int, due_from: datetime | None
) -> tuple[list[Moved], bool]:
    """Claim, move and audit one batch in a single statement per target state (one in
    practice): ``WITH claimed AS (SELECT … FOR NO KEY UPDATE SKIP LOCKED LIMIT n), moved AS
    (UPDATE … FROM claimed RETURNING …) INSERT INTO audit_events … RETURNING``. The ids
    come back once, for the follow-up messages. Returns (moved, whether a batch was full).

    ``due_from`` is where the previous batch of this tick reached in the due order. The
    index entries before it point at rows already moved, dead until vacuumed; starting
    every claim at the beginning would step over all of them each time, and the tick
    would slow down the further it gets (a million rows: quadratic). A row skipped
    because another transaction held it is taken by the next tick, which starts over.
    """
    moved: list[Moved] = []
    full = False
    for target, kinds in targets_of(SOFT_DELETED, EXPIRE).items():
        transition = _transition(uow, now, EXPIRE, WORKER.id, SOFT_DELETED, target)
        claim = _due_purges(now, kinds, limit, due_from)
        these = transitions.move_claimed(uow.session, transition, claim)
        full = full or len(these) >= limit
        moved.extend(these)
    _follow_up_after_commit(uow, moved)
    return moved, full


def expire_due_retentions(
    uow: UnitOfWork,
    clock: Clock,
    *,
    should_continue: Callable[[], bool] = lambda: True,
) -> tuple[int, int]:
    """Move every soft-deleted membership past ``purge_due_at`` to ``purge-pending``, batch by
    committed batch, and send data removal for each after its batch commits.

    Returns (memberships moved, batches committed).
    """
    limit = uow.policy.sweep_batch_size
    on_postgresql = is_postgresql(uow.session)
    moved = batches = 0
    due_from: datetime | None = None
    while should_continue():
        now = clock()
        if on_postgresql:
            rows, full = _expire_batch_on_postgresql(uow, now, limit, due_from)
            count = len(rows)
            due_from = max((r.purge_due_at for r in rows if r.purge_due_at), default=due_from)
        else:
            claimed = claim_due_purges(uow, now, limit)
            count = len(apply_event_to_batch(uow, now, EXPIRE, SOFT_DELETED, claimed))
            full = len(claimed) >= limit
        if not count:
            uow.rollback()
            break
        uow.commit()
        moved += count
        batches += 1
        if not full:
            break
    return moved, batches


def redrive_stalled(
    uow: UnitOfWork,
    clock: Clock,
    *,
    should_continue: Callable[[], bool] = lambda: True,
) -> dict[str, int]:
    """Send again the work of every in-progress membership with no progress for
    ``redrive_after``; touch ``last_progress_at`` so it waits another period before the
    next re-send. Returns how many were re-sent per actor name.
    """
    limit = uow.policy.sweep_batch_size
    sent: dict[str, int] = {}
    for state, actor_name in FOLLOW_UP.items():
        sent[actor_name] = 0
        while should_continue():
            now = clock()
            cutoff = now - uow.policy.redrive_after
            statement = (
                select(Membership.id)
                .where(
                    Membership.state == state,
                    or_(
                        Membership.last_progress_at.is_(None), Membership.last_progress_at < cutoff
                    ),
                )
                .order_by(Membership.last_progress_at)
                .limit(limit)
            )
            ids = list(uow.session.scalars(_locked(statement)))
            if not ids:
                uow.rollback()
                break
            uow.session.execute(
                update(Membership)
                .where(Membership.id.in_(ids), Membership.state == state)
                .values(last_progress_at=now)
                .execution_options(synchronize_session=False)
            )
            _send_after_commit(uow, actor_name, ids)
            uow.commit()
            sent[actor_name] += len(ids)
            if len(ids) < limit:
                break
    return sent


def count_overdue_removals(uow: UnitOfWork, now: datetime) -> int:
    """``purge-pending`` memberships past ``removal_due_by``: the data-removal window missed."""
    return (
        uow.session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.state == MembershipState.PURGE_PENDING.value,
                Membership.removal_due_by < now,
            )
        )
        or 0
    )


@dataclass(frozen=True, slots=True)
class SweepReport:
    """What one sweep did; ``overdue_removals`` is the alert, not an action."""

    tick_id: str
    expired: int
    batches: int
    redriven: dict[str, int] = field(default_factory=dict)
    overdue_removals: int = 0
    forgotten_keys: int = 0
    seconds: float = 0.0


def new_tick_id() -> str:
    """The id a sweep writes into its audit rows and messages, like a request id."""
    return f"sweep-{uuid.uuid4().hex[:16]}"


# At most this many batches of expired idempotency keys are deleted per tick, so a
# backlog of them never delays the next tick's timers; the rest go on later ticks.
KEY_BATCHES_PER_TICK = 10


def forget_expired_idempotency_keys(
    uow: UnitOfWork, clock: Clock, *, should_continue: Callable[[], bool] = lambda: True
) -> int:
    """Delete expired idempotency keys batch by committed batch, at most
    ``KEY_BATCHES_PER_TICK`` batches of ``sweep_batch_size``. Returns how many."""
    limit = uow.policy.sweep_batch_size
    forgotten = 0
    for _ in range(KEY_BATCHES_PER_TICK):
        if not should_continue():
            break
        deleted = forget_expired_keys(uow, clock, limit)
        forgotten += deleted
        if deleted < limit:
            break
    return forgotten


def expire_in_parallel(
    uow: UnitOfWork,
    clock: Clock,
    open_uow: Callable[[], UnitOfWork],
    concurrency: int,
    *,
    should_continue: Callable[[], bool] = lambda: True,
) -> tuple[int, int]:
    """``expire_due_retentions`` on ``concurrency`` connections at once: ``uow`` in this
    thread and one more unit of work from ``open_uow`` per extra thread. Each claims its
    own batches (``SKIP LOCKED``), so a tick uses as many database cores as it has
    connections; several schedulers do the same across processes. PostgreSQL only.

    Returns (memberships moved, batches committed); raises the first error a thread met.
    """
    results: list[tuple[int, int]] = []
    errors: list[BaseException] = []

    def run_extra() -> None:
        try:
            with open_uow() as other:
                other.request_id = uow.request_id
                results.append(expire_due_retentions(other, clock, should_continue=should_continue))
        except BaseException as error:  # re-raised in the calling thread below
            errors.append(error)

    threads = [
        threading.Thread(target=run_extra, name=f"sweep-{i}", daemon=True)
        for i in range(1, concurrency)
    ]
    for thread in threads:
        thread.start()
    try:
        results.append(expire_due_retentions(uow, clock, should_continue=should_continue))
    finally:
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]
    return sum(r[0] for r in results), sum(r[1] for r in results)


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
    if open_uow is not None and concurrency > 1 and is_postgresql(uow.session):
        expired, batches = expire_in_parallel(
            uow, clock, open_uow, concurrency, should_continue=should_continue
        )
    else:
        expired, batches = expire_due_retentions(uow, clock, should_continue=should_continue)
    redriven = redrive_stalled(uow, clock, should_continue=should_continue)
    overdue = count_overdue_removals(uow, clock())
    uow.rollback()
    forgotten = forget_expired_idempotency_keys(uow, clock, should_continue=should_continue)
    return SweepReport(
        tick_id=tick_id,
        expired=expired,
        batches=batches,
        redriven=redriven,
        overdue_removals=overdue,
        forgotten_keys=forgotten,
        seconds=time.perf_counter() - started,
    )
