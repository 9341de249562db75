"""Paged lists and read models: memberships, audit trails, operations, timelines
(``uow.listings``).

A page is read after a cursor's key: ``WHERE key > :after ORDER BY key LIMIT n + 1``, the
extra row telling the caller whether there is a next page. The cursors themselves (their
encoding, their checks) belong to the use cases; the repositories take the decoded value.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from store.models import AuditEvent, Membership
from store.repository import Repository


def rows_after_id(
    session: Session, query: Select[Any], id_column: Any, after: Any | None, limit: int
) -> Sequence[Any]:
    """Up to ``limit + 1`` rows of ``query`` in ``id_column`` order, after ``after`` (from the
    first row when ``None``): one page and whether another follows."""
    if after is not None:
        query = query.where(id_column > after)
    return session.scalars(query.order_by(id_column).limit(limit + 1)).all()


class Listings(Repository):
    """Paged lists and read models: memberships, audit trails, operations, timelines
    (``uow.listings``)."""

    def rows_after_id(
        self, query: Select[Any], id_column: Any, after: Any | None, limit: int
    ) -> Sequence[Any]:
        """A page of ``query``'s rows after ``after``, one row more (``rows_after_id``)."""
        return rows_after_id(self.session, query, id_column, after, limit)

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
        return rows_after_id(self.session, query, Membership.id, after, limit)

    def audit_page(
        self, organization_id: str, *, after: int | None, limit: int
    ) -> Sequence[AuditEvent]:
        """The organization's audit events in id order after the id ``after``: up to
        ``limit + 1`` of them."""
        query = select(AuditEvent).where(AuditEvent.organization_id == organization_id)
        return rows_after_id(self.session, query, AuditEvent.id, after, limit)

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
