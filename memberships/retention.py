"""The end of retention periods: claim due soft-deleted memberships in batches and start
their purge, set-based.

The database holds every due time. Each batch is one transaction: claim up to
``sweep_batch_size`` due rows (on PostgreSQL with ``FOR NO KEY UPDATE SKIP LOCKED``,
so several sweepers share the work and never take the same row), move the whole batch
with one UPDATE, write the audit rows with one INSERT, commit, and only then send the
data removal. On PostgreSQL the claim, the UPDATE and the INSERT are one statement
(``store.transitions.move_claimed``), so the ids cross to Python once, for the
messages. A million memberships due at once is a few hundred such batches, not a
million machines; a tick works through them on ``SWEEP_CONCURRENCY`` connections at
once, since each batch is bound by one database core (the row's new version and its
six index entries, the audit row and its three), not by Python.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from memberships.automatic import WORKER
from memberships.batches import apply_event_to_batch, follow_up_after_commit
from memberships.clock import Clock
from memberships.decisions import transition_for
from statemachines.membership import MembershipState, targets_of
from store.transitions import Claimed, Moved
from store.unit_of_work import UnitOfWork

SOFT_DELETED = MembershipState.SOFT_DELETED.value
EXPIRE = "expire_retention"


def claim_due_purges(uow: UnitOfWork, now: datetime, limit: int) -> list[Claimed]:
    """Up to ``limit`` soft-deleted memberships whose retention period has ended, oldest due
    first, locked for this transaction. Kinds the machine would refuse
    ``expire_retention`` for are never claimed (they would be claimed again forever)."""
    kinds = [k for ks in targets_of(SOFT_DELETED, EXPIRE).values() for k in ks]
    return uow.batches.claim_due_retention(now, kinds, limit)


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
        transition = transition_for(uow, now, WORKER.id, EXPIRE, SOFT_DELETED, target)
        claim = uow.batches.due_retention(now, kinds, limit, due_from)
        these = uow.transitions.move_claimed(transition, claim)
        full = full or len(these) >= limit
        moved.extend(these)
    follow_up_after_commit(uow, moved)
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
    in_one_statement = uow.batches.claim_moves_in_one_statement()
    moved = batches = 0
    due_from: datetime | None = None
    while should_continue():
        now = clock()
        if in_one_statement:
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
