"""Data removal: erase a purge-pending membership's data in bounded, committed batches.

Each batch is its own transaction and records progress on the membership, so a
crash mid-way resumes where it stopped. When every remover reports nothing
left, ``finish_removal`` turns the membership into a tombstone.

Two paths share these rules. ``remove_data_batch`` works on one membership (the
``remove_data`` message, the CLI). ``remove_chunk_batch`` works on a chunk of
memberships at once (the ``remove_data_many`` message a sweep batch becomes): it
locks the chunk's purge-pending rows, deletes each remover's rows for the whole
chunk with one statement, bounded by ``removal_batch_size`` rows per transaction,
adds each membership's count to its progress, and, once a transaction finds the
chunk drained, finishes every membership no remover reports data for with one
set-based ``finish_removal`` (``memberships.sweep.apply_event_to_batch``: audit
rows, version bump and erased personal fields, as the per-row machine does).

Removers are pluggable, one per data store: a deployment adds its own by
passing them in (``workers`` builds the list at its composition point). A
remover may also erase for many memberships at once (``ChunkRemover``); one that
cannot is called membership by membership inside the same bounded batch.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import (
    ARRAY,
    Integer,
    String,
    Table,
    any_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from memberships.clock import Clock
from memberships.decisions import apply_event, deny, entry_fields
from memberships.errors import TransitionNotAllowed
from memberships.sweep import Claimed, apply_event_to_batch, audit_moved, transition_table
from memberships.timers import WORKER
from statemachines.membership import MembershipState
from store.database import is_postgresql
from store.models import (
    AuditEvent,
    Grant,
    IdempotencyKey,
    Invitation,
    MemberData,
    Membership,
    User,
    UTCDateTime,
)
from store.unit_of_work import UnitOfWork

PURGE_PENDING = MembershipState.PURGE_PENDING.value


class Remover(Protocol):
    """Erases one data store's records of a membership, at most ``limit`` per call."""

    @property
    def name(self) -> str:
        """Names the data store in progress reports and errors."""
        ...

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        """Delete up to ``limit`` records; return how many were deleted (0: none left)."""
        ...

    def remaining(self, session: Session, membership_id: str) -> int:
        """How many records are left (used to prove the removal complete)."""
        ...


class ChunkRemover(Remover, Protocol):
    """A remover that also erases for many memberships with one call (optional: a remover
    without these methods is called membership by membership)."""

    def remove_many(
        self, session: Session, membership_ids: Sequence[str], limit: int
    ) -> Mapping[str, int]:
        """Delete up to ``limit`` records of these memberships in all; how many per membership
        (a membership with none deleted may be absent)."""
        ...

    def remaining_many(self, session: Session, membership_ids: Sequence[str]) -> set[str]:
        """Those of ``membership_ids`` that still have records."""
        ...


def _id_array(name: str, ids: Sequence[str]) -> Any:
    # One array parameter on PostgreSQL, not thousands of bound values.
    return bindparam(name, list(ids), type_=ARRAY(String))


@dataclass(frozen=True)
class TableRemover:
    """Deletes rows of one of this service's own tables keyed by ``membership_id``."""

    name: str
    model: type[Grant] | type[MemberData] | type[IdempotencyKey]

    def remove_many(
        self, session: Session, membership_ids: Sequence[str], limit: int
    ) -> Mapping[str, int]:
        table = self.model.__tablename__
        if is_postgresql(session):
            # The rows are found through the membership_id index and deleted by their
            # physical address (a TID scan): no second index lookup per row. The counts
            # come back grouped, one row per membership, not one per deleted row.
            statement = sql(
                f"WITH gone AS (DELETE FROM {table} WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {table} WHERE membership_id = ANY(:ids) LIMIT :limit)) "
                "RETURNING membership_id) "
                "SELECT membership_id, count(*) FROM gone GROUP BY membership_id"
            ).bindparams(_id_array("ids", membership_ids), bindparam("limit", limit))
            return {str(row[0]): int(row[1]) for row in session.execute(statement)}
        rows = session.execute(
            select(self.model.id, self.model.membership_id)
            .where(self.model.membership_id.in_(membership_ids))
            .limit(limit)
        ).all()
        if rows:
            session.execute(
                delete(self.model)
                .where(self.model.id.in_([row[0] for row in rows]))
                .execution_options(synchronize_session=False)
            )
        return dict(Counter(str(row[1]) for row in rows))

    def remaining_many(self, session: Session, membership_ids: Sequence[str]) -> set[str]:
        column = self.model.membership_id
        where = (
            column == any_(_id_array("ids", membership_ids))
            if is_postgresql(session)
            else column.in_(membership_ids)
        )
        return {str(m) for m in session.scalars(select(column).where(where).distinct())}

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        ids = select(self.model.id).where(self.model.membership_id == membership_id).limit(limit)
        result = session.execute(
            delete(self.model)
            .where(self.model.id.in_(ids.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # DELETE result

    def remaining(self, session: Session, membership_id: str) -> int:
        found = session.scalar(
            select(self.model.id).where(self.model.membership_id == membership_id).limit(1)
        )
        return 0 if found is None else 1


BUILT_IN_REMOVERS: tuple[Remover, ...] = (
    TableRemover("grants", Grant),
    TableRemover("member-data", MemberData),
    # Responses stored for Idempotency-Key replays can hold the membership's e-mail and name.
    TableRemover("idempotency-keys", IdempotencyKey),
)


@dataclass(frozen=True, slots=True)
class RemovalProgress:
    membership_id: str
    state: str | None
    removed_now: int
    removed_total: int

    @property
    def done(self) -> bool:
        """Nothing more to do: purged, or not a purge-pending membership."""
        return self.state != MembershipState.PURGE_PENDING.value


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
    membership = uow.session.get(Membership, membership_id)
    if membership is None or membership.state != MembershipState.PURGE_PENDING:
        return RemovalProgress(
            membership_id,
            membership.state if membership else None,
            0,
            membership.removed_rows if membership else 0,
        )
    limit = uow.policy.removal_batch_size
    removed = 0
    for remover in removers:
        removed += remover.remove_batch(uow.session, membership_id, limit - removed)
        if removed >= limit:
            break
    if removed:
        uow.session.execute(
            update(Membership)
            .where(
                Membership.id == membership_id, Membership.state == MembershipState.PURGE_PENDING
            )
            .values(removed_rows=Membership.removed_rows + removed, last_progress_at=now)
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        uow.session.refresh(membership)
        return RemovalProgress(membership_id, membership.state, removed, membership.removed_rows)
    finish_removal(uow, clock, membership_id, removers)
    return RemovalProgress(membership_id, MembershipState.PURGED.value, 0, membership.removed_rows)


def finish_removal(
    uow: UnitOfWork,
    clock: Clock,
    membership_id: str,
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> None:
    """``purge-pending`` → ``purged``: only when no remover has anything left.

    Erases the personal fields in the same transaction; the tombstone keeps ids,
    states and timestamps. Raises ``TransitionNotAllowed`` while data remains (audited,
    like every refused decision).
    """
    now = clock()
    membership = uow.session.get(Membership, membership_id)
    if membership is None or membership.state != MembershipState.PURGE_PENDING:
        return
    left = [r.name for r in removers if r.remaining(uow.session, membership_id)]
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
    departed = Departed(
        membership.id, membership.organization_id, membership.user_id, membership.email
    )
    apply_event(uow, now, WORKER, membership, "finish_removal")
    forget_departed(uow.session, now, [departed])
    uow.commit()


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

    @property
    def pending(self) -> tuple[str, ...]:
        """Locked by this batch and not purged yet: another batch is needed for them."""
        purged = set(self.purged)
        return tuple(i for i in self.worked_on if i not in purged)

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
    claimed, versions, people = _lock_purge_pending(uow, membership_ids)
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
        removed.update(_remove_many(remover, uow.session, ids, left))
    total = sum(removed.values())
    purged: tuple[str, ...] = ()
    blocked: dict[str, list[str]] = {}
    if total < limit:
        # Every remover deleted less than it was allowed: none has rows left for the chunk,
        # unless it reports data it cannot delete, which must block the finish.
        for remover in removers:
            for membership_id in _remaining_many(remover, uow.session, ids):
                blocked.setdefault(membership_id, []).append(remover.name)
        ready = [row for row in claimed if row.id not in blocked]
        if is_postgresql(uow.session):
            purged = _finish_on_postgresql(uow, now, ready, versions, removed)
            removed = Counter({m: n for m, n in removed.items() if m in blocked})
        if removed:
            _record_progress(uow, now, removed)
        if not purged:
            moved = apply_event_to_batch(uow, now, "finish_removal", PURGE_PENDING, ready)
            purged = tuple(m.id for m in moved)
        forget_departed(uow.session, now, [people[m] for m in purged])
        if blocked:
            _audit_refused_finishes(uow, now, [row for row in claimed if row.id in blocked])
    elif total:
        _record_progress(uow, now, removed)
    uow.commit()
    if blocked:
        names = sorted({name for found in blocked.values() for name in found})
        raise TransitionNotAllowed(
            f"Data remains in: {', '.join(names)} ({len(blocked)} memberships).",
            remaining=names,
            membership_ids=sorted(blocked),
        )
    return ChunkProgress(tuple(ids), total, purged)


def _lock_purge_pending(
    uow: UnitOfWork, membership_ids: Sequence[str]
) -> tuple[list[Claimed], dict[str, int], dict[str, Departed]]:
    """The chunk's purge-pending rows, locked, with the version each was read at and who
    each belongs to (what ``forget_departed`` erases once they are purged).

    The rows are found by id alone and their state checked here: a condition on ``state``
    would let the planner pick the partial index of purge-pending rows, which grows with
    every membership a sweep moves on and which the statistics of a burst know nothing
    of yet — a scan of all of them per chunk. A row of the chunk in another state (a
    tombstone a duplicate finished, say) stays locked to the end of this short
    transaction, which holds up nothing: no decision is waiting for a tombstone.
    """
    statement = (
        select(
            Membership.id,
            Membership.kind,
            Membership.organization_id,
            Membership.state,
            Membership.version,
            Membership.user_id,
            Membership.email,
        )
        .where(
            Membership.id == any_(_id_array("ids", membership_ids))
            if is_postgresql(uow.session)
            else Membership.id.in_(membership_ids)
        )
        .order_by(Membership.id)
        .with_for_update(skip_locked=True)
    )
    claimed: list[Claimed] = []
    versions: dict[str, int] = {}
    people: dict[str, Departed] = {}
    for row in uow.session.execute(statement):
        if row.state == PURGE_PENDING:
            claimed.append(
                Claimed(str(row.id), str(row.kind), str(row.organization_id), int(row.version))
            )
            versions[str(row.id)] = int(row.version)
            people[str(row.id)] = Departed(
                str(row.id), str(row.organization_id), row.user_id, row.email
            )
    return claimed, versions, people


@dataclass(frozen=True, slots=True)
class Departed:
    """Who a membership being purged belonged to, read before the purge cuts the link."""

    membership_id: str
    organization_id: str
    user_id: str | None
    email: str | None


def forget_departed(session: Session, now: datetime, departed: Sequence[Departed]) -> None:
    """What else a purge erases, in the purge's own transaction:

    - the organization's answered invitations of the person (the accepted one that made
      the membership, and those to the same address declined, revoked or expired), so no
      invitation links the tombstone, or the pseudonym an invitee declined under, to an
      e-mail address; a pending invitation stays (a new question the person may answer);
    - the user's e-mail and display name, once no membership of theirs is left anywhere
      (home included): tombstones no longer point at the user, so "none left" is "no
      membership row names them".
    """
    if not departed:
        return
    ids = [d.membership_id for d in departed]
    addresses = {(d.organization_id, d.email.strip().lower()) for d in departed if d.email}
    answered = Invitation.status != "pending"
    session.execute(
        delete(Invitation)
        .where(Invitation.membership_id.in_(ids))
        .execution_options(synchronize_session=False)
    )
    if addresses:
        session.execute(
            delete(Invitation)
            .where(
                tuple_(Invitation.organization_id, Invitation.email_key).in_(sorted(addresses)),
                or_(answered, Invitation.expires_at <= now),
            )
            .execution_options(synchronize_session=False)
        )
    users = sorted({d.user_id for d in departed if d.user_id})
    if users:
        still_a_member = (
            select(Membership.id).where(Membership.user_id == User.id).limit(1).exists()
        )
        session.execute(
            update(User)
            .where(User.id.in_(users), ~still_a_member)
            .values(email=None, display_name=None)
            .execution_options(synchronize_session=False)
        )


def _remove_many(
    remover: Remover, session: Session, membership_ids: Sequence[str], limit: int
) -> Mapping[str, int]:
    many = getattr(remover, "remove_many", None)
    if many is not None:
        return many(session, membership_ids, limit)  # type: ignore[no-any-return]
    removed: dict[str, int] = {}
    for membership_id in membership_ids:
        count = remover.remove_batch(session, membership_id, limit)
        if count:
            removed[membership_id] = count
            limit -= count
            if limit <= 0:
                break
    return removed


def _remaining_many(remover: Remover, session: Session, membership_ids: Sequence[str]) -> set[str]:
    many = getattr(remover, "remaining_many", None)
    if many is not None:
        return set(many(session, membership_ids))
    return {m for m in membership_ids if remover.remaining(session, m)}


def _finish_on_postgresql(
    uow: UnitOfWork,
    now: datetime,
    ready: Sequence[Claimed],
    versions: Mapping[str, int],
    removed: Mapping[str, int],
) -> tuple[str, ...]:
    """``finish_removal`` for ``ready``, with their last batch's progress, in one round trip
    per target state: the UPDATE that records ``removed_rows`` also moves the state on (what
    ``apply_event_to_batch`` stores: the machine's target, version + 1, the entry fields),
    and its RETURNING feeds the audit INSERT. One write per membership instead of two, in
    the transaction that touches the most index entries of the whole removal.

    The compare-and-set is on (id, version) as read, purge-pending, by the lock (no
    ``state`` condition: see ``_lock_purge_pending`` for why the planner must not see one).
    """
    by_target: dict[str, list[Claimed]] = {}
    for row in ready:
        target = transition_table().get((PURGE_PENDING, "finish_removal", row.kind))
        if target is not None:
            by_target.setdefault(target, []).append(row)
    purged: list[str] = []
    for target, rows in by_target.items():
        ids = [row.id for row in rows]
        batch = select(
            func.unnest(_id_array("ids", ids)).label("id"),
            func.unnest(
                bindparam("versions", [versions[i] for i in ids], type_=ARRAY(Integer))
            ).label("version"),
            func.unnest(
                bindparam("counts", [removed.get(i, 0) for i in ids], type_=ARRAY(Integer))
            ).label("n"),
        ).subquery("batch")
        moved = (
            update(Membership)
            .where(
                Membership.id == batch.c.id,
                Membership.state == PURGE_PENDING,
                Membership.version == batch.c.version,
                Membership.id == any_(_id_array("ids", ids)),
            )
            .values(
                state=target,
                version=Membership.version + 1,
                removed_rows=Membership.removed_rows + batch.c.n,
                last_progress_at=now,
                **entry_fields(target, now, uow),
            )
            .returning(Membership.id, Membership.organization_id)
            .cte("moved")
        )
        audit = audit_moved(
            moved, now, WORKER.id, "finish_removal", PURGE_PENDING, target, uow.request_id
        ).returning(AuditEvent.membership_id)
        purged.extend(str(m) for m in uow.session.scalars(audit))
    return tuple(purged)


def _record_progress(uow: UnitOfWork, now: datetime, removed: Mapping[str, int]) -> None:
    """Add each membership's deleted rows to ``removed_rows`` and touch ``last_progress_at``
    (so the sweep does not re-drive a removal that is moving)."""
    if is_postgresql(uow.session):
        uow.session.execute(
            sql(
                # The second condition on m.id lets the planner reach the rows through the
                # primary key instead of hashing the whole table.
                "UPDATE memberships AS m SET removed_rows = m.removed_rows + c.n, "
                "last_progress_at = :now FROM unnest(:ids, :counts) AS c(id, n) "
                "WHERE m.id = c.id AND m.id = ANY(:ids)"
            ).bindparams(
                _id_array("ids", list(removed)),
                bindparam("counts", list(removed.values()), type_=ARRAY(Integer)),
                bindparam("now", now, type_=UTCDateTime()),
            )
        )
        return
    table = cast(Table, Membership.__table__)
    uow.session.connection().execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(removed_rows=table.c.removed_rows + bindparam("b_count"), last_progress_at=now),
        [{"b_id": m, "b_count": n} for m, n in removed.items()],
    )


def _audit_refused_finishes(uow: UnitOfWork, now: datetime, rows: Sequence[Claimed]) -> None:
    uow.session.execute(
        insert(AuditEvent),
        [
            {
                "occurred_at": now,
                "organization_id": row.organization_id,
                "membership_id": row.id,
                "actor": WORKER.id,
                "action": "finish_removal",
                "outcome": "denied",
                "from_state": PURGE_PENDING,
                "to_state": None,
                "reason": TransitionNotAllowed.code,
                "request_id": uow.request_id,
            }
            for row in rows
        ],
    )
