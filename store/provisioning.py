"""Creating organizations, users, memberships and grants (``uow.provisioning``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from store.models import Grant, MemberData, Membership, Organization, RoleAssignment, User
from store.repository import Repository

# Member data rows per INSERT.
MEMBER_DATA_PER_INSERT = 5000


class Provisioning(Repository):
    """Creating organizations, users, memberships and grants (``uow.provisioning``)."""

    def add(self, row: Organization | User | Membership | RoleAssignment) -> None:
        """Insert a new row now (flushed), so its id and defaults are known."""
        self.session.add(row)
        self.session.flush()

    def add_grant(self, grant: Grant) -> bool:
        """Insert a new grant now (flushed); ``False`` when the membership already has one of
        that kind and name (the session must then be rolled back, as the caller's refusal
        does)."""
        self.session.add(grant)
        try:
            self.session.flush()
        except IntegrityError:
            return False
        return True

    def add_member_data(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert member data rows (column values), ``MEMBER_DATA_PER_INSERT`` per INSERT."""
        for start in range(0, len(rows), MEMBER_DATA_PER_INSERT):
            self.session.execute(insert(MemberData), rows[start : start + MEMBER_DATA_PER_INSERT])
