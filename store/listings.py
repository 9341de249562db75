"""Paged lists and read models: memberships, audit trails, operations, timelines
(``uow.listings``).

A page is read after a cursor's key: ``WHERE key > :after ORDER BY key LIMIT n + 1``, the
extra row telling the caller whether there is a next page. The cursors themselves (their
encoding, their checks) belong to the use cases; the repositories take the decoded value.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select

from statemachines.membership import MembershipState
from store.models import AuditEvent, Membership, removal_overdue
from store.repository import Repository


class Listings(Repository):
    """Paged lists and read models: memberships, audit trails, operations, timelines
    (``uow.listings``)."""

    def memberships_page(
        self,
        organization_id: str,
        *,
        state: str | None = None,
        kind: str | None = None,
        after: str | None = None,
        limit: int,
    ) -> Sequence[Membership]:
        """The organization's memberships (of ``state`` and ``kind`` when given) in id order
        after the id ``after``: up to ``limit + 1`` of them."""
        query = select(Membership).where(Membership.organization_id == organization_id)
        if state:
            query = query.where(Membership.state == state)
        if kind:
            query = query.where(Membership.kind == kind)
        return self.page_after(query, Membership.id, after, limit)

    def audit_page(
        self, organization_id: str, *, after: int | None, limit: int
    ) -> Sequence[AuditEvent]:
        """The organization's audit events in id order after the id ``after``: up to
        ``limit + 1`` of them."""
        query = select(AuditEvent).where(AuditEvent.organization_id == organization_id)
        return self.page_after(query, AuditEvent.id, after, limit)

    def names_of(
        self, organization_id: str, membership_ids: Collection[str]
    ) -> Sequence[tuple[str, str | None, str | None]]:
        """(id, display name, e-mail) of those of ``membership_ids`` in the organization."""
        rows = self.session.execute(
            select(Membership.id, Membership.display_name, Membership.email).where(
                Membership.organization_id == organization_id,
                Membership.id.in_(list(membership_ids)),
            )
        ).all()
        return [(row_id, name, email) for row_id, name, email in rows]

    def count_by_state(self) -> Sequence[tuple[str, int]]:
        """(state, number of memberships) for each stored state that has any."""
        rows = self.session.execute(
            select(Membership.state, func.count()).group_by(Membership.state)
        ).all()
        return [(state, int(count)) for state, count in rows]

    def _count(self, *where: ColumnElement[bool]) -> int:
        return int(
            self.session.scalar(select(func.count()).select_from(Membership).where(*where)) or 0
        )

    def count_overdue_purges(self, now: datetime) -> int:
        """Soft-deleted memberships whose ``purge_due_at`` has come (not yet swept)."""
        return self._count(
            Membership.state == MembershipState.SOFT_DELETED.value,
            Membership.purge_due_at <= now,
        )

    def count_stalled(self, state: str, stalled_before: datetime) -> int:
        """Memberships in ``state`` with no progress since ``stalled_before`` (or none ever)."""
        return self._count(
            Membership.state == state,
            or_(
                Membership.last_progress_at.is_(None), Membership.last_progress_at < stalled_before
            ),
        )

    def count_failing(self, states: Collection[str]) -> int:
        """Memberships in one of ``states`` with at least one recorded failed attempt."""
        return self._count(Membership.state.in_(states), Membership.attempts > 0)

    def next_due_purges(self, limit: int) -> Sequence[Membership]:
        """The ``limit`` soft-deleted memberships whose ``purge_due_at`` comes first."""
        return self.session.scalars(
            select(Membership)
            .where(Membership.state == MembershipState.SOFT_DELETED.value)
            .order_by(Membership.purge_due_at, Membership.id)
            .limit(limit)
        ).all()

    def overdue_removals(self, now: datetime, limit: int) -> Sequence[Membership]:
        """The ``limit`` purge-pending memberships longest past their ``removal_due_by``."""
        return self.session.scalars(
            select(Membership)
            .where(removal_overdue(now))
            .order_by(Membership.removal_due_by, Membership.id)
            .limit(limit)
        ).all()

    def oldest_leave_pending(self) -> Membership | None:
        """The leave-pending membership whose leave was asked for first."""
        return self.session.scalar(
            select(Membership)
            .where(Membership.state == MembershipState.LEAVE_PENDING.value)
            .order_by(Membership.leave_requested_at, Membership.id)
            .limit(1)
        )

    def count_allowed_by_action(self, actions: Collection[str]) -> Sequence[tuple[str, int]]:
        """(action, number of allowed audit events) for each of ``actions`` ever audited."""
        rows = self.session.execute(
            select(AuditEvent.action, func.count())
            .where(AuditEvent.outcome == "allowed", AuditEvent.action.in_(actions))
            .group_by(AuditEvent.action)
        ).all()
        return [(action, int(count)) for action, count in rows]
