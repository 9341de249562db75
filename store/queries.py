"""Lookups and the audit log's single-row INSERT (state changes: ``store.transitions``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from functools import cache

from sqlalchemy import Select, String, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError

from statemachines.membership import LISTED_STATES
from store.models import (
    ADMIN_ROLES,
    AuditEvent,
    Grant,
    MemberData,
    Membership,
    Organization,
    RoleAssignment,
    User,
)
from store.repository import Repository


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


@cache
def _live_membership_of_statement(*, by_id: bool) -> Select[User, Organization, Membership]:
    """Built once per kind of reference, then reused with bound values."""
    ref = bindparam("ref", type_=String())
    return (
        select(User, Organization, Membership)
        .join(Membership, Membership.user_id == User.id)
        .join(Organization, Organization.id == Membership.organization_id)
        .where(
            User.id == bindparam("user_id", type_=String()),
            Organization.id == ref if by_id else Organization.domain == ref,
            Membership.state != "purged",
        )
        .limit(1)
    )


_AUDIT_INSERT = insert(AuditEvent.metadata.tables[AuditEvent.__tablename__])


class Directory(Repository):
    """Organizations, users and their roles (``uow.directory``)."""

    def user(self, user_id: str) -> User | None:
        """The user with this id."""
        return self.session.get(User, user_id)

    def organization(self, organization_id: str) -> Organization | None:
        """The organization with this id."""
        return self.session.get(Organization, organization_id)

    def find_organization(self, ref: str) -> Organization | None:
        """An organization by its id (a GUID) or its domain name (case-insensitive)."""
        ref = (ref or "").strip()
        if _is_guid(ref):
            found = self.session.get(Organization, ref.lower())
            if found is not None:
                return found
        return self.session.scalar(select(Organization).where(Organization.domain == ref.lower()))

    def find_user(self, ref: str) -> User | None:
        """A user by id or e-mail (case-insensitive)."""
        ref = (ref or "").strip()
        if _is_guid(ref):
            found = self.session.get(User, ref.lower())
            if found is not None:
                return found
        return self.session.scalar(select(User).where(User.email == ref.lower()))

    def roles_of(self, user_id: str, organization_id: str | None) -> set[str]:
        where = (
            RoleAssignment.organization_id.is_(None)
            if organization_id is None
            else RoleAssignment.organization_id == organization_id
        )
        return set(
            self.session.scalars(
                select(RoleAssignment.role).where(RoleAssignment.user_id == user_id, where)
            )
        )

    def organizations_administered_by(self, user_id: str) -> Sequence[Organization]:
        """The organizations where the user holds an admin role (whether or not the account is
        disabled), by display name."""
        return self.session.scalars(
            select(Organization)
            .join(RoleAssignment, RoleAssignment.organization_id == Organization.id)
            .where(RoleAssignment.user_id == user_id, RoleAssignment.role.in_(ADMIN_ROLES))
            .order_by(Organization.display_name, Organization.id)
            .distinct()
        ).all()

    def admin_emails_of(
        self, organization_ids: Sequence[str]
    ) -> list[tuple[str | None, str | None]]:
        """(organization id, e-mail) of every enabled admin with an e-mail address in those
        organizations, by e-mail, each pair once."""
        rows = self.session.execute(
            select(RoleAssignment.organization_id, User.email)
            .join(User, User.id == RoleAssignment.user_id)
            .where(
                RoleAssignment.organization_id.in_(organization_ids),
                RoleAssignment.role.in_(ADMIN_ROLES),
                User.enabled.is_(True),
                User.email.is_not(None),
            )
            .order_by(User.email)
            .distinct()
        ).all()
        return [(org_id, email) for org_id, email in rows]

    def is_disabled(self, user_id: str, organization_id: str | None = None) -> bool:
        """Whether the account is disabled at home (the user, or their home membership), or in
        ``organization_id`` (their membership there). An unknown user counts as disabled."""
        user = self.session.get(User, user_id)
        if user is None or not user.enabled:
            return True
        places = {o for o in (user.home_organization_id, organization_id) if o is not None}
        if not places:
            return False
        found = self.session.scalar(
            select(Membership.id)
            .where(
                Membership.user_id == user_id,
                Membership.organization_id.in_(places),
                Membership.state != "purged",
                Membership.enabled.is_(False),
            )
            .limit(1)
        )
        return found is not None

    def acting_roles(self, user_id: str, organization_id: str | None) -> set[str]:
        """The roles that give powers now: none at all while the account is disabled (at home,
        or in ``organization_id`` where the role is held)."""
        roles = self.roles_of(user_id, organization_id)
        if roles and self.is_disabled(user_id, organization_id):
            return set()
        return roles

    def is_admin_of(self, user_id: str, organization_id: str) -> bool:
        """An admin role in that organization, held by an account that is not disabled."""
        return bool(self.acting_roles(user_id, organization_id) & set(ADMIN_ROLES))

    def is_operator(self, user_id: str) -> bool:
        """The platform ``operator`` role, held by an account that is not disabled."""
        return "operator" in self.acting_roles(user_id, None)


class Memberships(Repository):
    """Memberships and their grants (``uow.memberships``)."""

    def live_membership(self, user_id: str, organization_id: str) -> Membership | None:
        """The membership that is not purged yet (at most one exists)."""
        return self.session.scalar(
            select(Membership).where(
                Membership.user_id == user_id,
                Membership.organization_id == organization_id,
                Membership.state != "purged",
            )
        )

    def add_membership(
        self,
        user: User,
        organization_id: str,
        kind: str,
        now: datetime,
        *,
        enabled: bool = True,
    ) -> Membership | None:
        """A new ``active`` membership of ``user`` in the organization, flushed; ``None`` when
        the user already has one there that is not purged (also when a concurrent insert won the
        unique index: the session must then be rolled back, which the caller's refusal does)."""
        if self.live_membership(user.id, organization_id) is not None:
            return None
        membership = Membership(
            user_id=user.id,
            organization_id=organization_id,
            kind=kind,
            enabled=enabled,
            email=user.email,
            display_name=user.display_name,
            created_at=now,
        )
        self.session.add(membership)
        try:
            self.session.flush()
        except IntegrityError:
            return None
        return membership

    def live_membership_of(
        self, user_id: str, organization_ref: str
    ) -> tuple[User, Organization, Membership] | None:
        """The user, the organization (by id or domain, as ``find_organization``) and the
        user's live membership of it, in one query; ``None`` when that finds no row.

        A GUID is matched on the organization's id only, a domain on the domain only: no
        domain looks like a GUID (``valid_domain`` wants a dot, which no GUID has), so
        ``None`` means the user has no live membership there (or does not exist).
        """
        ref = (organization_ref or "").strip().lower()
        row = self.session.execute(
            _live_membership_of_statement(by_id=_is_guid(ref)), {"user_id": user_id, "ref": ref}
        ).first()
        return None if row is None else (row[0], row[1], row[2])

    def listed_with_organizations(self, user_id: str) -> Sequence[tuple[Membership, Organization]]:
        """The user's memberships in a listed state (``LISTED_STATES``), each with its
        organization, in one query."""
        return self.session.execute(
            select(Membership, Organization)
            .join(Organization, Organization.id == Membership.organization_id)
            .where(Membership.user_id == user_id, Membership.state.in_(LISTED_STATES))
        ).all()

    def get(self, membership_id: str) -> Membership | None:
        """A membership by its id, from the session's identity map when it holds it."""
        return self.session.get(Membership, membership_id)

    def grants_of(self, membership_id: str) -> Sequence[Grant]:
        return self.session.scalars(
            select(Grant)
            .where(Grant.membership_id == membership_id)
            .order_by(Grant.kind, Grant.name)
        ).all()

    def count_member_data(self, membership_id: str) -> int:
        return (
            self.session.scalar(
                select(func.count())
                .select_from(MemberData)
                .where(MemberData.membership_id == membership_id)
            )
            or 0
        )

    def refresh(self, membership: Membership, *, lock: bool = False) -> None:
        """Read the loaded membership's row again; ``lock``: and lock it for this transaction
        (``SELECT … FOR UPDATE``)."""
        if lock:
            self.session.refresh(membership, with_for_update=True)
        else:
            self.session.refresh(membership)


class AuditLog(Repository):
    """The audit log: appending and reading it (``uow.audit``)."""

    def append(
        self,
        *,
        occurred_at: datetime,
        actor: str,
        action: str,
        outcome: str = "allowed",
        organization_id: str | None = None,
        membership_id: str | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        reason: str | None = None,
        request_id: str | None = None,
    ) -> None:
        """Append one entry to the audit log: one INSERT, without the ORM's flush around it
        (the hot path of every decision)."""
        self.session.execute(
            _AUDIT_INSERT,
            {
                "occurred_at": occurred_at,
                "actor": actor,
                "action": action,
                "outcome": outcome,
                "organization_id": organization_id,
                "membership_id": membership_id,
                "from_state": from_state,
                "to_state": to_state,
                "reason": reason,
                "request_id": request_id,
            },
        )

    def append_denials(
        self,
        refused: Sequence[tuple[str, str]],
        *,
        occurred_at: datetime,
        actor: str,
        action: str,
        from_state: str,
        reason: str,
        request_id: str | None,
    ) -> None:
        """Append one denied entry per (organization id, membership id) in ``refused``: one
        bulk INSERT."""
        self.session.execute(
            insert(AuditEvent),
            [
                {
                    "occurred_at": occurred_at,
                    "organization_id": organization_id,
                    "membership_id": membership_id,
                    "actor": actor,
                    "action": action,
                    "outcome": "denied",
                    "from_state": from_state,
                    "to_state": None,
                    "reason": reason,
                    "request_id": request_id,
                }
                for organization_id, membership_id in refused
            ],
        )

    def last_allowed_action(self, membership_id: str, actions: Sequence[str]) -> str | None:
        """The action of the membership's newest allowed entry among ``actions``, if any."""
        return self.session.scalar(
            select(AuditEvent.action)
            .where(
                AuditEvent.membership_id == membership_id,
                AuditEvent.outcome == "allowed",
                AuditEvent.action.in_(actions),
            )
            .order_by(AuditEvent.id.desc())
            .limit(1)
        )

    def trail(self, membership_id: str) -> Sequence[AuditEvent]:
        return self.session.scalars(
            select(AuditEvent)
            .where(AuditEvent.membership_id == membership_id)
            .order_by(AuditEvent.id)
        ).all()
