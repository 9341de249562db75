"""The statements of data removal: this service's own tables erased in bounded batches,
for one membership or a chunk of many, and the chunk's lock.

A ``Remover`` erases one data store's records of a membership; ``TableRemover`` is the
built-in remover of one table keyed by ``membership_id``. ``DataRemoval``
(``uow.data_removal``) runs them on the unit of work's session; ``memberships.removal``
decides when and how much.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ARRAY, String, any_, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from statemachines.membership import MembershipState
from store import notices
from store.database import is_postgresql
from store.models import Grant, IdempotencyKey, Invitation, MemberData, Membership, User
from store.repository import Repository
from store.transitions import Claimed

PURGE_PENDING = MembershipState.PURGE_PENDING.value


def _id_array(name: str, ids: Sequence[str]) -> Any:
    # One array parameter on PostgreSQL, not thousands of bound values.
    return bindparam(name, list(ids), type_=ARRAY(String))


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


TABLE_REMOVERS: tuple[TableRemover, ...] = (
    TableRemover("grants", Grant),
    TableRemover("member-data", MemberData),
    # Responses stored for Idempotency-Key replays can hold the membership's e-mail and name.
    TableRemover("idempotency-keys", IdempotencyKey),
)
"""This service's own tables that hold a membership's data, in the order they are erased."""


@dataclass(frozen=True, slots=True)
class Departed:
    """Who a membership being purged belonged to, read before the purge cuts the link."""

    membership_id: str
    organization_id: str
    user_id: str | None
    email: str | None


class DataRemoval(Repository):
    """The staged removal of a member's data (``uow.data_removal``): the removers run on
    this unit of work's session, the chunk's lock, progress, failures, and what a purge
    erases besides."""

    # ---- the removers ----------------------------------------------------------------------

    def erase(self, remover: Remover, membership_id: str, limit: int) -> int:
        """Up to ``limit`` of one membership's records deleted by ``remover``; how many."""
        return remover.remove_batch(self.session, membership_id, limit)

    def remaining(self, remover: Remover, membership_id: str) -> int:
        """How many records ``remover`` still has of the membership (0: none)."""
        return remover.remaining(self.session, membership_id)

    def rows_left(self, membership_id: str) -> int:
        """How many rows of the membership's own data this service's tables still hold
        (``TABLE_REMOVERS``; a removal's progress: ``removal: {rows}``)."""
        return sum(
            self.session.execute(
                select(func.count())
                .select_from(remover.model)
                .where(remover.model.membership_id == membership_id)
            ).scalar_one()
            for remover in TABLE_REMOVERS
        )

    def erase_chunk(
        self, remover: Remover, membership_ids: Sequence[str], limit: int
    ) -> Mapping[str, int]:
        """Up to ``limit`` records of these memberships in all deleted by ``remover``, with one
        call when it is a ``ChunkRemover``, else membership by membership; how many per
        membership."""
        many = getattr(remover, "remove_many", None)
        if many is not None:
            return many(self.session, membership_ids, limit)  # type: ignore[no-any-return]
        removed: dict[str, int] = {}
        for membership_id in membership_ids:
            count = remover.remove_batch(self.session, membership_id, limit)
            if count:
                removed[membership_id] = count
                limit -= count
                if limit <= 0:
                    break
        return removed

    def with_data_left(self, remover: Remover, membership_ids: Sequence[str]) -> set[str]:
        """Those of ``membership_ids`` that ``remover`` still has records of."""
        many = getattr(remover, "remaining_many", None)
        if many is not None:
            return set(many(self.session, membership_ids))
        return {m for m in membership_ids if remover.remaining(self.session, m)}

    # ---- the memberships being removed -----------------------------------------------------

    def lock_chunk(self, membership_ids: Sequence[str]) -> list[Claimed]:
        """The chunk's purge-pending rows, locked (``FOR UPDATE SKIP LOCKED``), each with the
        version it was read at.

        The rows are found by id alone and their state checked here: a condition on
        ``state`` would let the planner pick the partial index of purge-pending rows, which
        grows with every membership a sweep moves on and which the statistics of a burst
        know nothing of yet — a scan of all of them per chunk. A row of the chunk in another
        state (a tombstone a duplicate finished, say) stays locked to the end of this short
        transaction, which holds up nothing: no decision is waiting for a tombstone.
        """
        statement = (
            select(
                Membership.id,
                Membership.kind,
                Membership.organization_id,
                Membership.state,
                Membership.version,
            )
            .where(
                Membership.id == any_(_id_array("ids", membership_ids))
                if is_postgresql(self.session)
                else Membership.id.in_(membership_ids)
            )
            .order_by(Membership.id)
            .with_for_update(skip_locked=True)
        )
        claimed: list[Claimed] = []
        for row in self.session.execute(statement):
            if row.state == PURGE_PENDING:
                claimed.append(
                    Claimed(str(row.id), str(row.kind), str(row.organization_id), int(row.version))
                )
        return claimed

    def record_progress_of(self, membership_id: str, removed: int, now: datetime) -> None:
        """Add ``removed`` to a purge-pending membership's ``removed_rows`` and touch its
        ``last_progress_at`` (no state change)."""
        self.session.execute(
            update(Membership)
            .where(Membership.id == membership_id, Membership.state == PURGE_PENDING)
            .values(removed_rows=Membership.removed_rows + removed, last_progress_at=now)
            .execution_options(synchronize_session=False)
        )

    def record_chunk_failure(self, membership_ids: Sequence[str], error: str) -> int:
        """One more failed attempt and ``error`` on each of ``membership_ids`` still
        purge-pending; how many. No state, version or ``last_progress_at`` change."""
        result = self.session.execute(
            update(Membership)
            .where(Membership.id.in_(list(membership_ids)), Membership.state == PURGE_PENDING)
            .values(attempts=Membership.attempts + 1, last_error=error)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    def still_purge_pending(self, membership_ids: Sequence[str]) -> list[str]:
        """Those of ``membership_ids`` that are ``purge-pending``, read without a lock."""
        return list(
            self.session.scalars(
                select(Membership.id).where(
                    Membership.id.in_(list(membership_ids)), Membership.state == PURGE_PENDING
                )
            )
        )

    # ---- the connected apps' confirmations (``store.webhook_deliveries``) ------------------

    # ---- the purge -------------------------------------------------------------------------

    def departed_of(self, membership_ids: Sequence[str]) -> list[Departed]:
        """Who each of these memberships belongs to (read before their purge)."""
        if not membership_ids:
            return []
        rows = self.session.execute(
            select(
                Membership.id, Membership.organization_id, Membership.user_id, Membership.email
            ).where(Membership.id.in_(list(membership_ids)))
        )
        return [Departed(str(r[0]), str(r[1]), r[2], r[3]) for r in rows]

    def forget_departed(self, now: datetime, departed: Sequence[Departed]) -> None:
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
        session = self.session
        # Before the user's address may go: the purge's notice of a member no earlier notice
        # names (their removal began before notices existed), with its mail.
        notices.address_departed(
            session, [(d.membership_id, d.organization_id, d.user_id) for d in departed]
        )
        ids = [d.membership_id for d in departed]
        addresses = {(d.organization_id, d.email.strip().lower()) for d in departed if d.email}
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
                    or_(Invitation.status != "pending", Invitation.expires_at <= now),
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
