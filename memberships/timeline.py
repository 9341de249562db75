"""A membership's record as its admin reads it: state, grants, audit timeline, and the
data-removal progress while it is ``purge-pending``.

Actors in the audit log are ids; the timeline names them in the organization's
words (the member, an admin's e-mail, the service) without copying anything
personal into the log itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from memberships import removal_confirmations
from memberships.automatic import WORKER
from memberships.clock import Clock
from memberships.decisions import admin_organization, membership_in, organization_or_404
from memberships.principal import SYSTEM, Principal
from memberships.views import AuditEventView, GrantView, MembershipView, OrganizationView
from statemachines.membership import MembershipState
from store.models import Membership, User
from store.unit_of_work import UnitOfWork


@dataclass(frozen=True, slots=True)
class RemovalProgressView:
    """How far data removal has come; ``overdue`` once ``removal_due_by`` has passed."""

    removed_rows: int
    remaining_rows: int
    removal_due_by: datetime | None
    attempts: int
    last_error: str | None
    overdue: bool

    @property
    def percent_done(self) -> int:
        total = self.removed_rows + self.remaining_rows
        return 100 if total == 0 else int(self.removed_rows * 100 / total)


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    event: AuditEventView
    actor_label: str


@dataclass(frozen=True, slots=True)
class MembershipDetails:
    organization: OrganizationView
    membership: MembershipView
    timeline: tuple[TimelineEntry, ...]
    removal: RemovalProgressView | None


def _remaining_rows(uow: UnitOfWork, membership_id: str) -> int:
    """Grants and member data still held: what the built-in removers have left to erase."""
    grants = len(uow.memberships.grants_of(membership_id))
    return grants + uow.memberships.count_member_data(membership_id)


def _actor_label(uow: UnitOfWork, actor: str, membership: Membership) -> str:
    if actor in (membership.user_id, membership.pseudonym):
        return "the member"
    if actor in (WORKER.id, SYSTEM.id):
        return "the service"
    user = uow.session.get(User, actor)
    return user.email if user is not None and user.email else actor


def labelled_trail(uow: UnitOfWork, membership: Membership) -> list[AuditEventView]:
    """A membership's audit trail, oldest first, each event with its ``actor_label``
    (the member is "the member" whether the event names their user id or, once
    purged, their pseudonym)."""
    labels: dict[str, str] = {}
    trail = []
    for event in uow.audit.trail(membership.id):
        if event.actor not in labels:
            labels[event.actor] = _actor_label(uow, event.actor, membership)
        trail.append(replace(AuditEventView.of(event), actor_label=labels[event.actor]))
    return trail


def membership_details(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, membership_id: str
) -> MembershipDetails:
    """Raises ``NotFound`` (organization or membership) or ``Forbidden`` (neither an admin
    of the organization nor a platform operator, who may read any record: the Operations
    page links its timers here)."""
    now = clock()
    if "operator" in uow.directory.roles_of(principal.id, None):
        org = organization_or_404(uow, org_ref)
    else:
        org = admin_organization(uow, now, principal, org_ref, "read_membership")
    membership = membership_in(uow, org, membership_id)
    grants = tuple(GrantView.of(g) for g in uow.memberships.grants_of(membership.id))
    timeline = [
        TimelineEntry(event, event.actor_label or event.actor)
        for event in labelled_trail(uow, membership)
    ]
    removal = None
    if membership.state == MembershipState.PURGE_PENDING:
        removal = RemovalProgressView(
            removed_rows=membership.removed_rows,
            remaining_rows=_remaining_rows(uow, membership.id),
            removal_due_by=membership.removal_due_by,
            attempts=membership.attempts,
            last_error=membership.last_error,
            overdue=membership.removal_due_by is not None and membership.removal_due_by < now,
        )
    return MembershipDetails(
        organization=OrganizationView.of(org),
        membership=MembershipView.of(
            membership, grants, removal_confirmations.removal_of(uow, membership)
        ),
        timeline=tuple(timeline),
        removal=removal,
    )
