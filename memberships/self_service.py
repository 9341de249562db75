"""What a member does with their own memberships: list them, look at one, leave one.

Self-service acts only on the caller's own memberships: every lookup is keyed by
the principal's user id, so another member's membership is simply not found.
"""

from __future__ import annotations

from memberships.clock import Clock
from memberships.decisions import apply_event, deny
from memberships.errors import (
    AccountDisabled,
    HomeOrganization,
    LeaveDenied,
    LeaveDisabled,
    NotFound,
)
from memberships.principal import Principal
from memberships.views import MembershipView, OrganizationEntry, OrganizationView
from statemachines.membership import (
    LEAVABLE_STATES,
    MembershipKind,
    refused_for_kind,
)
from store.models import Membership, Organization, User
from store.unit_of_work import UnitOfWork

_CONTACT = "Contact the organization's admin or privacy contact and ask them to remove you."


def leave_blocker(user: User, membership: Membership, org: Organization) -> LeaveDenied | None:
    """Why the member may not leave on their own, or ``None`` when they may.

    Checked in this order: home organization, disabled account (at home or in that
    organization), the organization's external user leave setting.
    """
    contacts = OrganizationView.of(org).contacts
    # The machine's rule (a home membership is never left); no guest membership of a
    # user's home organization can exist (provisioning and invitations refuse one)
    if refused_for_kind(membership.kind, "request_leave"):
        return HomeOrganization(
            f"{org.display_name} is your home organization: you can't leave it, only its "
            "admin can remove your account. Contact the organization's admin or privacy "
            "contact if you want your account removed.",
            contacts=contacts,
        )
    if not user.enabled or not membership.enabled:
        return AccountDisabled(
            f"Your account is disabled, so you can't leave {org.display_name} yourself. "
            + _CONTACT,
            contacts=contacts,
        )
    if not org.external_user_leave_allowed:
        return LeaveDisabled(
            f"{org.display_name} does not let external users leave on their own. " + _CONTACT,
            contacts=contacts,
        )
    return None


def _entry(user: User, membership: Membership, org: Organization) -> OrganizationEntry:
    # The same order as request_leave: the state first, then the leave rules
    # (docs/domain.md, "Leaving").
    if membership.state not in LEAVABLE_STATES:
        reason: str | None = "transition-not-allowed"
    else:
        blocker = leave_blocker(user, membership, org)
        reason = blocker.code if blocker else None
    return OrganizationEntry(
        organization=OrganizationView.of(org),
        membership=MembershipView.of(membership),
        is_home=membership.kind == MembershipKind.HOME,
        can_leave=reason is None,
        leave_blocked_reason=reason,
    )


def _caller(uow: UnitOfWork, principal: Principal) -> User:
    user = uow.directory.user(principal.id)
    if user is None:
        raise NotFound("The signed-in user is not known to this service.")
    return user


def _caller_membership(
    uow: UnitOfWork, principal: Principal, org_ref: str
) -> tuple[User, Organization, Membership]:
    """The caller, the organization ``org_ref`` names and the caller's live membership of
    it, in one joined query. When it finds nothing, the ``NotFound`` says whether the
    caller is unknown or not a member (an organization that does not exist included)."""
    found = uow.memberships.live_membership_of(principal.id, org_ref)
    if found is None:
        _caller(uow, principal)
        raise NotFound(f"You are not a member of {org_ref!r}.")
    return found


def list_organizations(uow: UnitOfWork, principal: Principal) -> list[OrganizationEntry]:
    """The caller's organizations: the home organization first, then the others by name."""
    user = _caller(uow, principal)
    rows = uow.memberships.listed_with_organizations(user.id)
    entries = [_entry(user, m, o) for m, o in rows]
    entries.sort(
        key=lambda e: (not e.is_home, e.organization.display_name.lower(), e.organization.id)
    )
    return entries


def get_my_organization(uow: UnitOfWork, principal: Principal, org_ref: str) -> OrganizationEntry:
    """One of the caller's memberships, in any state until it is purged (then ``NotFound``)."""
    user, org, membership = _caller_membership(uow, principal, org_ref)
    return _entry(user, membership, org)


def request_leave(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    expected_version: int | None = None,
) -> MembershipView:
    """The member leaves ``org_ref``: the membership becomes ``leave-pending`` and a worker
    carries the leave out after the commit.

    Raises ``NotFound``, ``HomeOrganization``, ``AccountDisabled``, ``LeaveDisabled`` (each
    with the organization's ``contacts``; audited), ``PreconditionFailed`` (the membership
    is no longer at ``expected_version``), ``TransitionNotAllowed`` or ``Conflict``.
    """
    now = clock()
    user, org, membership = _caller_membership(uow, principal, org_ref)
    # A membership that is not active or restored cannot be left whatever the rules say:
    # that is a 409 from the lifecycle (apply_event), not a refusal to contact anyone.
    blocker = leave_blocker(user, membership, org) if membership.state in LEAVABLE_STATES else None
    if blocker is not None:
        deny(
            uow,
            now,
            principal,
            "request_leave",
            blocker,
            organization_id=org.id,
            membership_id=membership.id,
            from_state=membership.state,
        )
    apply_event(uow, now, principal, membership, "request_leave", expected_version=expected_version)
    uow.commit()
    return MembershipView.of(membership)
