"""What use cases return: plain frozen values, never ORM rows.

After a purge, a membership view carries ids, states and timestamps only; the
personal fields are ``None`` because the row no longer has them, and ``user_id``
is the membership's pseudonym, which leads to nobody.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from statemachines.membership import IN_PROGRESS, allowed_events
from store.models import AuditEvent, Grant, Invitation, Membership, Organization, User

if TYPE_CHECKING:
    from memberships.removal_confirmations import RemovalView


@dataclass(frozen=True, slots=True)
class OrganizationView:
    id: str
    domain: str
    display_name: str
    privacy_contact_email: str | None
    privacy_statement_url: str | None
    external_user_leave_allowed: bool

    @property
    def has_privacy_profile(self) -> bool:
        return bool(self.privacy_contact_email and self.privacy_statement_url)

    @property
    def contacts(self) -> dict[str, str]:
        """The privacy contacts the organization has (a denied leave shows them)."""
        found = {
            "privacy_contact_email": self.privacy_contact_email,
            "privacy_statement_url": self.privacy_statement_url,
        }
        return {k: v for k, v in found.items() if v}

    @classmethod
    def of(cls, org: Organization) -> OrganizationView:
        return cls(
            id=org.id,
            domain=org.domain,
            display_name=org.display_name,
            privacy_contact_email=org.privacy_contact_email,
            privacy_statement_url=org.privacy_statement_url,
            external_user_leave_allowed=org.external_user_leave_allowed,
        )


@dataclass(frozen=True, slots=True)
class UserView:
    id: str
    email: str | None
    display_name: str | None
    home_organization_id: str | None
    enabled: bool

    @classmethod
    def of(cls, user: User) -> UserView:
        return cls(user.id, user.email, user.display_name, user.home_organization_id, user.enabled)


@dataclass(frozen=True, slots=True)
class GrantView:
    id: str
    kind: str
    name: str
    granted_at: datetime

    @classmethod
    def of(cls, grant: Grant) -> GrantView:
        return cls(grant.id, grant.kind, grant.name, grant.granted_at)


@dataclass(frozen=True, slots=True)
class MembershipView:
    id: str
    user_id: str
    organization_id: str
    kind: str
    state: str
    version: int
    enabled: bool
    email: str | None
    display_name: str | None
    created_at: datetime
    leave_requested_at: datetime | None
    soft_deleted_at: datetime | None
    purge_due_at: datetime | None
    restored_at: datetime | None
    purge_started_at: datetime | None
    removal_due_by: datetime | None
    purged_at: datetime | None
    removed_rows: int
    attempts: int
    last_error: str | None
    grants: tuple[GrantView, ...] = field(default=())
    removal: RemovalView | None = None
    """Once data removal started: its own rows and the connected apps' confirmations."""

    @property
    def allowed_events(self) -> frozenset[str]:
        """The lifecycle events this membership allows now (the machine's answer)."""
        return allowed_events(self.state, self.kind)

    @property
    def in_progress(self) -> bool:
        """Whether a worker is moving it on by itself (a leave or a data removal)."""
        return self.state in IN_PROGRESS

    @classmethod
    def of(
        cls,
        m: Membership,
        grants: tuple[GrantView, ...] = (),
        removal: RemovalView | None = None,
    ) -> MembershipView:
        return cls(
            id=m.id,
            # A purged membership has no user: its pseudonym stands where the id was.
            user_id=m.user_id or m.pseudonym,
            organization_id=m.organization_id,
            kind=m.kind,
            state=m.state,
            version=m.version,
            enabled=m.enabled,
            email=m.email,
            display_name=m.display_name,
            created_at=m.created_at,
            leave_requested_at=m.leave_requested_at,
            soft_deleted_at=m.soft_deleted_at,
            purge_due_at=m.purge_due_at,
            restored_at=m.restored_at,
            purge_started_at=m.purge_started_at,
            removal_due_by=m.removal_due_by,
            purged_at=m.purged_at,
            removed_rows=m.removed_rows,
            attempts=m.attempts,
            last_error=m.last_error,
            grants=grants,
            removal=removal,
        )


@dataclass(frozen=True, slots=True)
class AuditEventView:
    id: int
    occurred_at: datetime
    organization_id: str | None
    membership_id: str | None
    actor: str
    action: str
    outcome: str
    from_state: str | None
    to_state: str | None
    reason: str | None
    request_id: str | None
    actor_label: str | None = None
    """Who acted, as people read it ("the member", "the service", an admin's e-mail);
    set by ``memberships.timeline.labelled_trail``."""

    @classmethod
    def of(cls, e: AuditEvent) -> AuditEventView:
        return cls(
            e.id,
            e.occurred_at,
            e.organization_id,
            e.membership_id,
            e.actor,
            e.action,
            e.outcome,
            e.from_state,
            e.to_state,
            e.reason,
            e.request_id,
        )


@dataclass(frozen=True, slots=True)
class InvitationView:
    """An invitation as its organization's admin and its invitee see it.

    ``status`` is ``expired`` for a pending invitation past ``expires_at``.
    """

    id: str
    organization_id: str
    email: str
    kind: str
    status: str
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None

    @classmethod
    def of(cls, i: Invitation, now: datetime) -> InvitationView:
        expired = i.status == "pending" and i.expires_at <= now
        return cls(
            id=i.id,
            organization_id=i.organization_id,
            email=i.email,
            kind=i.kind,
            status="expired" if expired else i.status,
            created_at=i.created_at,
            expires_at=i.expires_at,
            responded_at=i.responded_at,
        )


@dataclass(frozen=True, slots=True)
class MyInvitation:
    """A pending invitation addressed to the signed-in user, with who invites them."""

    invitation: InvitationView
    organization: OrganizationView


@dataclass(frozen=True, slots=True)
class OrganizationEntry:
    """One line of a member's Organizations list."""

    organization: OrganizationView
    membership: MembershipView
    is_home: bool
    can_leave: bool
    leave_blocked_reason: str | None


@dataclass(frozen=True, slots=True)
class Page:
    """A page of a cursor-paginated list; ``next_cursor`` is ``None`` on the last page."""

    items: tuple[Any, ...]
    next_cursor: str | None


def to_dict(view: Any) -> dict[str, Any]:
    """A JSON-ready dict of a view (datetimes as ISO 8601), for the CLI."""

    def convert(value: Any) -> Any:
        if isinstance(value, datetime):
            return value.isoformat()
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    return convert(asdict(view))  # type: ignore[no-any-return]  # asdict gives a dict
