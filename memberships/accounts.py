"""Who is signed in and what they may open: the account behind the web pages.

The pages show each person only the places their roles open (the organizations
they administer, the operations view for operators). Roles come from the
database on every request, so a role taken away takes effect at once, without
waiting for a session to expire.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from memberships.clock import Clock
from memberships.errors import NotFound
from memberships.notices import recent_notices
from memberships.principal import Principal
from memberships.self_service import get_my_organization, leave_blocker, list_organizations
from memberships.views import OrganizationEntry, OrganizationView, UserView
from store.models import User
from store.unit_of_work import UnitOfWork

SIGN_IN_LIST_LIMIT = 200
RECENT_CHANGES_DAYS = 30
ADMIN_CONTACTS_LIMIT = 3

# The changes a member is told about on their Organizations page, by notice kind
# (``store.models.NOTICE_KINDS``).
CHANGES = {
    "membership.removed": "removed",
    "membership.left": "left",
    "membership.restored": "restored",
    "membership.removal_started": "removal-started",
    "membership.purged": "purged",
    "removal_request.approved": "request-approved",
    "removal_request.declined": "request-declined",
    "removal_request.overdue": "request-overdue",
    "removal_request.closed": "request-closed",
}


@dataclass(frozen=True, slots=True)
class AccountView:
    """The signed-in user with the organizations they administer and their platform roles."""

    user: UserView
    administers: tuple[OrganizationView, ...]
    is_operator: bool


@dataclass(frozen=True, slots=True)
class OrganizationsOverview:
    """What the Organizations page shows: the home organization, the others, and the one
    asked for with ``?tenantId=`` (in any state until it is purged).

    ``not_a_member`` is the reference asked for when the caller has no membership there
    (never had one, or it has been purged since): the page says so instead of failing,
    because "gone" is what a member who just left expects to see in the end.
    """

    home: OrganizationEntry | None
    others: tuple[OrganizationEntry, ...]
    focus: OrganizationEntry | None
    not_a_member: str | None = None
    focus_removed_by_organization: bool = False
    """The focused membership was removed by the organization (not left by the member)."""
    blocked: dict[str, str] = field(default_factory=dict)
    """Organization id -> the sentence that says why the member can't leave it themselves."""
    admin_contacts: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Organization id -> the e-mail addresses of its admins, for the organizations the
    member can't leave (or was removed from) on their own."""
    recent: tuple[RecentChange, ...] = ()


@dataclass(frozen=True, slots=True)
class RecentChange:
    """What happened to one of the member's memberships in the last 30 days.

    ``change`` is ``removed`` (by the organization), ``left``, ``restored``,
    ``removal-started``, ``purged``, or a removal request's ``request-approved``,
    ``request-declined`` (with the organization's ``reason``), ``request-overdue`` or
    ``request-closed`` (it ended because the membership ended another way).
    ``purge_due_at`` and ``removal_due_by`` are the dates the change set (until when the
    organization could restore the account; by when the data would be gone).
    """

    occurred_at: datetime
    organization: OrganizationView
    change: str
    purge_due_at: datetime | None
    removal_due_by: datetime | None
    reason: str | None = None


def account_of(uow: UnitOfWork, principal: Principal) -> AccountView:
    """The signed-in user's account. Raises ``NotFound`` when the user no longer exists,
    so a session that outlived its user ends instead of acting on nobody's behalf."""
    user = uow.directory.user(principal.id)
    if user is None:
        raise NotFound("The signed-in user is not known to this service.")
    administered = uow.directory.organizations_administered_by(user.id)
    # A disabled account keeps its roles on record but opens nothing with them.
    return AccountView(
        user=UserView.of(user),
        administers=tuple(
            OrganizationView.of(o)
            for o in administered
            if not uow.directory.is_disabled(user.id, o.id)
        ),
        is_operator=uow.directory.is_operator(user.id),
    )


def users_to_sign_in_as(uow: UnitOfWork) -> list[UserView]:
    """Every user who may sign in, by e-mail: only the development sign-in page lists them.

    The caller decides whether such a page exists at all (development settings);
    capped so that a large directory cannot turn the page into a dump. Disabled
    accounts and erased users are not listed.
    """
    rows = uow.accounts.users_to_sign_in_as(SIGN_IN_LIST_LIMIT)
    return [UserView.of(u) for u in rows]


def may_sign_in_as(uow: UnitOfWork, user_id: str) -> bool:
    """Whether the development sign-in accepts ``user_id`` (what it would list)."""
    return uow.accounts.may_sign_in_as((user_id or "").strip())


def organizations_overview(
    uow: UnitOfWork, principal: Principal, tenant_ref: str | None = None, clock: Clock | None = None
) -> OrganizationsOverview:
    """The caller's Organizations page: home first, then the others, plus the one named
    by ``tenant_ref`` (id or domain), each organization the caller can't leave on their
    own with why and whom to ask, and (given a ``clock``) what changed in the last 30
    days. Raises ``NotFound`` only when the caller's own user is unknown."""
    entries = list_organizations(uow, principal)
    focus, not_a_member = None, None
    if tenant_ref:
        try:
            focus = get_my_organization(uow, principal, tenant_ref)
        except NotFound:
            not_a_member = tenant_ref
    user = uow.directory.user(principal.id)
    blocked = _blocked_reasons(uow, user, [*entries, *([focus] if focus else [])])
    removed = focus is not None and _removed_by_organization(uow, focus.membership.id)
    ask = set(blocked) | ({focus.organization.id} if focus and removed else set())
    recent = _recent_changes(uow, principal, clock()) if clock is not None else ()
    return OrganizationsOverview(
        home=next((e for e in entries if e.is_home), None),
        others=tuple(e for e in entries if not e.is_home),
        focus=focus,
        not_a_member=not_a_member,
        focus_removed_by_organization=removed,
        blocked=blocked,
        admin_contacts=admin_contacts(uow, ask),
        recent=recent,
    )


def _blocked_reasons(
    uow: UnitOfWork, user: User | None, entries: Iterable[OrganizationEntry]
) -> dict[str, str]:
    """The sentence of the refusal a Leave would get, for each organization that refuses."""
    reasons: dict[str, str] = {}
    for entry in entries:
        if user is None or entry.can_leave or entry.membership.state not in ("active", "restored"):
            continue
        membership = uow.memberships.get(entry.membership.id)
        org = uow.directory.organization(entry.organization.id)
        blocker = leave_blocker(user, membership, org) if membership and org else None
        if blocker is not None:
            reasons[entry.organization.id] = blocker.detail
    return reasons


def admin_contacts(uow: UnitOfWork, organization_ids: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The e-mail addresses of each organization's admins (a few, by address)."""
    wanted = sorted(set(organization_ids))
    if not wanted:
        return {}
    rows = uow.directory.admin_emails_of(wanted)
    found: dict[str, list[str]] = {org_id: [] for org_id in wanted}
    for org_id, email in rows:
        if org_id is not None and email and len(found[org_id]) < ADMIN_CONTACTS_LIMIT:
            found[org_id].append(email)
    return {org_id: tuple(emails) for org_id, emails in found.items()}


def _removed_by_organization(uow: UnitOfWork, membership_id: str) -> bool:
    """Whether the membership's last move into Deleted users was an admin's removal."""
    last = uow.audit.last_allowed_action(
        membership_id, ("remove", "complete_leave", "request_leave")
    )
    return last == "remove"


def _recent_changes(
    uow: UnitOfWork, principal: Principal, now: datetime
) -> tuple[RecentChange, ...]:
    """The caller's notices of the last 30 days, newest first (``memberships.notices``): a
    purge included, though the tombstone no longer names the person."""
    return tuple(
        RecentChange(
            occurred_at=notice.occurred_at,
            organization=notice.organization,
            change=CHANGES.get(notice.kind, notice.kind),
            purge_due_at=notice.restorable_until,
            removal_due_by=notice.removal_due_by,
            reason=notice.reason,
        )
        for notice in recent_notices(uow, principal, now)
    )
