"""The statements the background work runs over many memberships at once, named for what
they do in the domain (``uow.batches``): claiming due retention periods, finding stalled
work, counting overdue removals, the row lock of a message and the failed attempts kept on
a membership. State changes are not here: they go through ``store.transitions``.

On PostgreSQL the claims lock with ``FOR NO KEY UPDATE SKIP LOCKED`` so several sweepers
share the work and never take the same row; SQLite renders no ``FOR UPDATE`` (its
``BEGIN IMMEDIATE`` already makes each batch exclusive).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, or_, select, true, update

from statemachines.membership import MembershipKind, MembershipState
from store.database import is_postgresql
from store.models import Membership, removal_overdue
from store.repository import Repository
from store.transitions import Claimed
from store.webhook_deliveries import waiting_on_apps


def skip_locked(statement: Any) -> Any:
    # SKIP LOCKED lets several sweepers claim disjoint batches on PostgreSQL. NO KEY
    # UPDATE is the strength an UPDATE that keeps the key takes anyway: it still excludes
    # every other decision about the row, but not the inserts of rows that refer to it.
    # SQLite renders no FOR UPDATE: its BEGIN IMMEDIATE already makes each batch exclusive.
    return statement.with_for_update(skip_locked=True, key_share=True)


class BatchOperations(Repository):
    """The sweep's claims and batch statements, and a message's row lock (``uow.batches``)."""

    def claims_in_parallel(self) -> bool:
        """Whether several connections may claim due retention periods at once (PostgreSQL:
        each claim skips the rows another one holds)."""
        return is_postgresql(self.session)

    def claim_moves_in_one_statement(self) -> bool:
        """Whether a batch of due retention periods is claimed, moved and audited in one
        statement (PostgreSQL, ``due_retention`` handed to ``uow.transitions.move_claimed``)
        rather than claimed here and moved by ``move_rows``."""
        return is_postgresql(self.session)

    def due_retention(
        self, now: datetime, kinds: Sequence[str], limit: int, due_from: datetime | None = None
    ) -> Select[Any]:
        """The claim of due soft-deleted memberships of ``kinds``, oldest due first (the
        partial index ``ix_memberships_due_purge`` gives that order for free), locked, at most
        ``limit``; from ``due_from`` on when given. ``uow.transitions.move_claimed`` takes it
        as the first part of its one statement on PostgreSQL."""
        return skip_locked(  # type: ignore[no-any-return]  # a Select, locked
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

    def claim_due_retention(self, now: datetime, kinds: Sequence[str], limit: int) -> list[Claimed]:
        """Up to ``limit`` soft-deleted memberships of ``kinds`` whose retention period has
        ended, oldest due first, locked for this transaction."""
        return [
            Claimed(str(row.id), str(row.kind), str(row.organization_id), int(row.version))
            for row in self.session.execute(self.due_retention(now, kinds, limit))
        ]

    def claim_stalled(self, state: str, cutoff: datetime, limit: int) -> list[str]:
        """Up to ``limit`` memberships in ``state`` with no progress since ``cutoff``, longest
        stalled first, locked for this transaction. A ``purge-pending`` membership whose own
        data is removed and that waits on a connected app's confirmation is not stalled: the
        app's answer sends its work again (and once nothing is open, this takes it)."""
        statement = (
            select(Membership.id)
            .where(
                Membership.state == state,
                or_(Membership.last_progress_at.is_(None), Membership.last_progress_at < cutoff),
                ~waiting_on_apps() if state == MembershipState.PURGE_PENDING.value else true(),
            )
            .order_by(Membership.last_progress_at)
            .limit(limit)
        )
        return list(self.session.scalars(skip_locked(statement)))

    def touch_progress(self, ids: Sequence[str], now: datetime) -> None:
        """Set ``last_progress_at`` of ``ids`` (no state change): the memberships
        ``claim_stalled`` locked in this transaction, so still in the state it claimed."""
        self.session.execute(
            update(Membership)
            .where(Membership.id.in_(ids))
            .values(last_progress_at=now)
            .execution_options(synchronize_session=False)
        )

    def count_overdue_removals(self, now: datetime) -> int:
        """``purge-pending`` memberships past ``removal_due_by``: the data-removal window
        missed."""
        return self.session.execute(
            select(func.count()).select_from(Membership).where(removal_overdue(now))
        ).scalar_one()

    def lock_membership(self, membership_id: str) -> bool:
        """Lock the membership's row for this transaction; ``False`` when there is none."""
        found = self.session.scalar(
            select(Membership.id).where(Membership.id == membership_id).with_for_update()
        )
        return found is not None

    def count_failed_attempt(self, membership_id: str, error: str) -> bool:
        """One more failed attempt and ``error`` on the membership unless it is purged (no
        state, version or ``last_progress_at`` change); ``False`` when no row matched."""
        result = self.session.execute(
            update(Membership)
            .where(Membership.id == membership_id, Membership.state != MembershipState.PURGED.value)
            .values(attempts=Membership.attempts + 1, last_error=error)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    def attempts_of(self, membership_id: str) -> int | None:
        """The failed attempts recorded on the membership."""
        return self.session.scalar(
            select(Membership.attempts).where(Membership.id == membership_id)
        )
