"""Data removal: erase a purge-pending membership's data in bounded, committed batches.

Each batch is its own transaction and records progress on the membership, so a
crash mid-way resumes where it stopped. When every remover reports nothing
left, the ``finish_removal`` event turns the membership into a tombstone.

Two paths share these rules. ``remove_data_batch`` works on one membership (the
``remove_data`` message, the CLI). ``remove_chunk_batch`` works on a chunk of
memberships at once (the ``remove_data_many`` message a sweep batch becomes): it
locks the chunk's purge-pending rows, deletes each remover's rows for the whole
chunk with one statement, bounded by ``removal_batch_size`` rows per transaction,
adds each membership's count to its progress, and, once a transaction finds the
chunk drained, finishes every membership no remover reports data for with one
set-based ``finish_removal`` (``memberships.batches.apply_event_to_batch``: audit
rows, version bump and erased personal fields, as the per-row machine does).

Connected apps: a membership whose organization had endpoints with ``confirmsRemoval``
when removal started is finished only once every one of them has confirmed
(``store.app_confirmations``, ``memberships.removal_confirmations``). Until then the
finish is not fired: the service's own data is gone, the membership stays
``purge-pending`` and is *waiting on apps* (counted, and overdue past
``removal_due_by``), and the work is done for now (no message repeats itself). The
confirmation that closes the last row sends ``remove_data`` again, which finishes it;
the sweep's re-drive takes such a membership again once nothing is open.

Removers are pluggable, one per data store: a deployment adds its own by
passing them in (``workers`` builds the list at its composition point). A
remover may also erase for many memberships at once (``ChunkRemover``); one that
cannot is called membership by membership inside the same bounded batch. What a remover
is, and the statements of the removal, are in ``store.data_removal`` (``uow.data_removal``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memberships.automatic import WORKER
from memberships.batches import apply_event_to_batch
from memberships.clock import Clock
from memberships.decisions import apply_event, deny
from memberships.errors import TransitionNotAllowed
from statemachines.membership import MembershipState
from store.data_removal import TABLE_REMOVERS, Departed
from store.data_removal import ChunkRemover as ChunkRemover
from store.data_removal import Remover as Remover
from store.models import Membership
from store.unit_of_work import UnitOfWork

PURGE_PENDING = MembershipState.PURGE_PENDING.value

BUILT_IN_REMOVERS: tuple[Remover, ...] = TABLE_REMOVERS
"""The removers of this service's own tables (``store.data_removal``); a deployment adds
its own at the workers' composition point."""


@dataclass(frozen=True, slots=True)
class RemovalProgress:
    state: str | None
    removed_now: int
    removed_total: int
    waiting_on_apps: bool = False
    """The own data is removed; connected apps have not all confirmed yet."""

    @property
    def done(self) -> bool:
        """Nothing more to do now: purged, not a purge-pending membership, or waiting on
        apps to confirm (their confirmation sends the work again)."""
        return self.state != MembershipState.PURGE_PENDING.value or self.waiting_on_apps


def remove_data_batch(
    uow: UnitOfWork,
    clock: Clock,
    membership_id: str,
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> RemovalProgress:
    """Erase one bounded batch and commit it; when nothing is left, finish the removal.

    Idempotent: a membership that is not ``purge-pending`` is left as it is.
    """
    now = clock()
    membership = uow.memberships.get(membership_id)
    if membership is None or membership.state != MembershipState.PURGE_PENDING:
        return RemovalProgress(
            membership.state if membership else None,
            0,
            membership.removed_rows if membership else 0,
        )
    limit = uow.policy.removal_batch_size
    removed = 0
    for remover in removers:
        removed += uow.data_removal.erase(remover, membership_id, limit - removed)
        if removed >= limit:
            break
    if removed:
        uow.data_removal.record_progress_of(membership_id, removed, now)
        uow.commit()
        uow.memberships.refresh(membership)
        return RemovalProgress(membership.state, removed, membership.removed_rows)
    if not _finish(uow, now, membership, removers):
        return RemovalProgress(PURGE_PENDING, 0, membership.removed_rows, waiting_on_apps=True)
    return RemovalProgress(MembershipState.PURGED.value, 0, membership.removed_rows)


def _finish(
    uow: UnitOfWork, now: datetime, membership: Membership, removers: Sequence[Remover]
) -> bool:
    """``purge-pending`` → ``purged`` (the event ``finish_removal``), for a batch that found
    nothing to erase: only when no remover has anything left and every connected app has
    confirmed.

    Erases the personal fields in the same transaction; the tombstone keeps ids,
    states and timestamps. Raises ``TransitionNotAllowed`` while data remains (audited,
    like every refused decision). Returns ``False`` (and commits that the own data is
    gone) while an app has not confirmed: the removal waits on it.
    """
    left = [r.name for r in removers if uow.data_removal.remaining(r, membership.id)]
    if left:
        deny(
            uow,
            now,
            WORKER,
            "finish_removal",
            TransitionNotAllowed(f"Data remains in: {', '.join(left)}.", remaining=left),
            organization_id=membership.organization_id,
            membership_id=membership.id,
            from_state=membership.state,
        )
    if uow.deliveries.open_confirmations([membership.id]):
        uow.deliveries.mark_rows_removed([membership.id], now)
        uow.commit()
        return False
    departed = Departed(
        membership.id, membership.organization_id, membership.user_id, membership.email
    )
    apply_event(uow, now, WORKER, membership, "finish_removal")
    uow.data_removal.forget_departed(now, [departed])
    uow.commit()
    return True


def remove_all_data(
    uow: UnitOfWork,
    clock: Clock,
    membership_id: str,
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> RemovalProgress:
    """Run batches until the membership is purged (CLI and tests; workers go batch by batch)."""
    while True:
        progress = remove_data_batch(uow, clock, membership_id, removers)
        if progress.done:
            return progress


# --- many memberships at once ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChunkProgress:
    """What one committed batch over a chunk of memberships did."""

    worked_on: tuple[str, ...]
    """The chunk's purge-pending memberships this batch locked (others were purged already,
    are not purge-pending, or are held by another worker right now)."""
    removed_now: int
    purged: tuple[str, ...]
    waiting_on_apps: tuple[str, ...] = ()
    """Drained, but a connected app has not confirmed: not finished, and no more work now."""

    @property
    def pending(self) -> tuple[str, ...]:
        """Locked by this batch and not purged yet: another batch is needed for them."""
        settled = set(self.purged) | set(self.waiting_on_apps)
        return tuple(i for i in self.worked_on if i not in settled)

    @property
    def done(self) -> bool:
        return not self.pending


def remove_chunk_batch(
    uow: UnitOfWork,
    clock: Clock,
    membership_ids: Sequence[str],
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> ChunkProgress:
    """Erase one bounded batch across a chunk of memberships and commit it; in the batch that
    finds the chunk drained, finish every membership with nothing left.

    Idempotent and safe beside a duplicate: only ``purge-pending`` rows are taken, each
    locked for the transaction (PostgreSQL ``FOR UPDATE SKIP LOCKED``: a membership
    another worker holds is left to it; SQLite serializes writers), and progress counts
    the rows each statement really deleted. Raises ``TransitionNotAllowed`` (with
    ``membership_ids`` and ``remaining``) when removers still report data that they do
    not delete: those memberships are not finished and each gets a denied
    ``finish_removal`` in the audit log, committed with the rest of the batch.
    """
    now = clock()
    claimed = uow.data_removal.lock_chunk(membership_ids)
    if not claimed:
        uow.rollback()
        return ChunkProgress((), 0, ())
    ids = [row.id for row in claimed]
    limit = uow.policy.removal_batch_size
    removed: Counter[str] = Counter()
    for remover in removers:
        left = limit - sum(removed.values())
        if left <= 0:
            break
        removed.update(uow.data_removal.erase_chunk(remover, ids, left))
    total = sum(removed.values())
    purged: tuple[str, ...] = ()
    waiting: tuple[str, ...] = ()
    blocked: dict[str, list[str]] = {}
    if total < limit:
        # Every remover deleted less than it was allowed: none has rows left for the chunk,
        # unless it reports data it cannot delete, which must block the finish.
        for remover in removers:
            for membership_id in uow.data_removal.with_data_left(remover, ids):
                blocked.setdefault(membership_id, []).append(remover.name)
        unconfirmed = uow.deliveries.open_confirmations(
            [row.id for row in claimed if row.id not in blocked]
        )
        waiting = tuple(row.id for row in claimed if row.id in unconfirmed)
        uow.deliveries.mark_rows_removed(waiting, now)
        ready = [row for row in claimed if row.id not in blocked and row.id not in unconfirmed]
        # The finish records the last batch's progress of the memberships it moves in the
        # same UPDATE (one write per membership, in the transaction that touches the most
        # index entries of the whole removal); the others' progress is recorded apart.
        people = uow.data_removal.departed_of([row.id for row in ready])
        moved = apply_event_to_batch(
            uow, now, "finish_removal", PURGE_PENDING, ready, progress=removed
        )
        purged = tuple(m.id for m in moved)
        gone = set(purged)
        uow.data_removal.forget_departed(now, [p for p in people if p.membership_id in gone])
        # (Those not finished, waiting on apps or changed by another writer since they were
        # locked, keep the rows this batch erased: their progress is recorded here.)
        rest = {m: n for m, n in removed.items() if m not in gone}
        uow.transitions.record_removal_progress(now, rest)
        if blocked:
            refused = [(row.organization_id, row.id) for row in claimed if row.id in blocked]
            uow.audit.append_denials(
                refused,
                occurred_at=now,
                actor=WORKER.id,
                action="finish_removal",
                from_state=PURGE_PENDING,
                reason=TransitionNotAllowed.code,
                request_id=uow.request_id,
            )
    elif total:
        uow.transitions.record_removal_progress(now, removed)
    uow.commit()
    if blocked:
        names = sorted({name for found in blocked.values() for name in found})
        raise TransitionNotAllowed(
            f"Data remains in: {', '.join(names)} ({len(blocked)} memberships).",
            remaining=names,
            membership_ids=sorted(blocked),
        )
    return ChunkProgress(tuple(ids), total, purged, waiting)
