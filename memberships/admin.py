"""What an organization's admin decides: settings, removal, restore, permanent delete.

Each operation needs the Global Administrator or External Identity Provider
Administrator role in *that* organization; the check is here, not at the edges.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memberships.clock import Clock
from memberships.decisions import (
    admin_organization,
    apply_event,
    audit,
    deny,
    membership_in,
)
from memberships.errors import (
    HomeOrganization,
    InvalidInput,
    PrivacyProfileRequired,
    RestoreWindowClosed,
)
from memberships.principal import Principal
from memberships.validation import valid_email, valid_statement_url
from memberships.views import GrantView, MembershipView, OrganizationView
from statemachines.membership import refused_for_kind, restore_window_closed
from store import outbox
from store.models import Membership, Organization
from store.unit_of_work import UnitOfWork


def set_privacy_profile(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    contact_email: str,
    statement_url: str,
) -> OrganizationView:
    """Set the privacy contact e-mail and statement URL. Raises ``InvalidInput``."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "set_privacy_profile")
    # Both fields are checked before anything is refused, so a form can mark every
    # mistake at once: ``errors`` lists each bad field with a sentence for people
    # (the shape of every ``invalid-input`` problem). The checks' own messages are not
    # shown, so they are given no field name.
    problems: dict[str, str] = {}
    try:
        email = valid_email(contact_email)
    except InvalidInput:
        problems["contactEmail"] = (
            "Enter the privacy contact's e-mail address, like privacy@contoso.example."
        )
    try:
        url = valid_statement_url(statement_url)
    except InvalidInput as error:
        problems["statementUrl"] = (
            "Enter the full web address of the privacy statement, starting with https://."
            if "http" in error.detail
            else "The privacy statement's web address is too long (at most 255 characters)."
        )
    if problems:
        raise InvalidInput(
            " ".join(problems.values()),
            field=next(iter(problems)),
            errors=[
                {"location": "json", "field": name, "message": message}
                for name, message in problems.items()
            ],
        )
    before = settings_of(org)
    org.privacy_contact_email = email
    org.privacy_statement_url = url
    audit(uow, now, principal, "set_privacy_profile", organization_id=org.id)
    record_settings_change(uow, now, org, before)
    uow.commit()
    return OrganizationView.of(org)


def set_external_user_leave_allowed(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, allowed: bool
) -> OrganizationView:
    """Allow or disallow self-service leave; only while the organization has a privacy
    profile. Raises ``PrivacyProfileRequired`` otherwise (audited)."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "set_external_user_leave_allowed")
    if not OrganizationView.of(org).has_privacy_profile:
        deny(
            uow,
            now,
            principal,
            "set_external_user_leave_allowed",
            PrivacyProfileRequired(
                f"{org.domain} has no privacy profile: add a privacy contact e-mail and a privacy "
                "statement URL before changing the external user leave setting."
            ),
            organization_id=org.id,
        )
    before = settings_of(org)
    org.external_user_leave_allowed = bool(allowed)
    audit(
        uow,
        now,
        principal,
        "set_external_user_leave_allowed",
        organization_id=org.id,
        reason="allowed" if allowed else "disallowed",
    )
    record_settings_change(uow, now, org, before)
    uow.commit()
    return OrganizationView.of(org)


def settings_of(org: Organization) -> dict[str, Any]:
    """The organization's settings as ``organization.settings_changed`` names them."""
    return {
        "privacyContactEmail": org.privacy_contact_email,
        "privacyStatementUrl": org.privacy_statement_url,
        "externalUserLeaveAllowed": org.external_user_leave_allowed,
    }


def record_settings_change(
    uow: UnitOfWork, now: datetime, org: Organization, before: dict[str, Any]
) -> None:
    """The ``organization.settings_changed`` event, in the change's transaction; none when
    nothing changed (the same values saved again)."""
    after = settings_of(org)
    changed = [name for name in after if after[name] != before[name]]
    if not changed:
        return
    uow.outbox.record_event(
        type=outbox.ORGANIZATION_SETTINGS_CHANGED,
        organization_id=org.id,
        membership_id=None,
        occurred_at=now,
        data={
            "organization": {"id": org.id, "domain": org.domain},
            "changed": changed,
            "settings": after,
            "previous": {name: before[name] for name in changed},
        },
    )


def remove(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    membership_id: str,
    expected_version: int | None = None,
) -> MembershipView:
    """Remove a guest: B2B collaboration → ``soft-deleted`` (restorable for the retention
    period); B2B direct connect → ``purge-pending`` (data removal starts)."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "remove")
    membership = membership_in(uow, org, membership_id)
    remove_membership(uow, now, principal, org, membership, expected_version)
    uow.commit()
    return MembershipView.of(membership)


def remove_membership(
    uow: UnitOfWork,
    now: datetime,
    principal: Principal,
    org: Organization,
    membership: Membership,
    expected_version: int | None = None,
) -> None:
    """The removal itself, in the caller's transaction (not committed): an admin's
    ``remove``, and the approval of a removal request, which removes exactly alike."""
    if refused_for_kind(membership.kind, "remove"):  # a home membership
        deny(
            uow,
            now,
            principal,
            "remove",
            HomeOrganization(
                "A home account is managed by its home directory, not removed as a guest."
            ),
            organization_id=org.id,
            membership_id=membership.id,
            from_state=membership.state,
        )
    apply_event(uow, now, principal, membership, "remove", expected_version=expected_version)


def restore(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    membership_id: str,
    expected_version: int | None = None,
) -> MembershipView:
    """Bring a soft-deleted membership back with exactly the grants it had.

    Grants are never touched by a soft delete, so they come back as they were. Raises
    ``RestoreWindowClosed`` once the retention period has ended — the membership is
    still soft-deleted but its ``purge_due_at`` has passed, or the retention timer has
    already started its purge — and ``TransitionNotAllowed`` from any other state (an
    admin's permanent delete is irrevocable too, but it did not close a window); both
    audited.
    """
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "restore")
    membership = membership_in(uow, org, membership_id)
    if restore_window_closed(
        membership.state, membership.purge_due_at, membership.purge_started_at, now
    ):
        assert membership.purge_due_at is not None
        deny(
            uow,
            now,
            principal,
            "restore",
            RestoreWindowClosed(
                f"The retention period ended at {membership.purge_due_at.isoformat()}; permanent "
                "deletion has started or is about to.",
                purge_due_at=membership.purge_due_at,
            ),
            organization_id=org.id,
            membership_id=membership.id,
            from_state=membership.state,
        )
    apply_event(uow, now, principal, membership, "restore", expected_version=expected_version)
    grants = tuple(GrantView.of(g) for g in uow.memberships.grants_of(membership.id))
    uow.commit()
    return MembershipView.of(membership, grants)


def purge(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    membership_id: str,
    expected_version: int | None = None,
) -> MembershipView:
    """Permanently delete a soft-deleted membership: irrevocable, data removal starts."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "purge")
    membership = membership_in(uow, org, membership_id)
    apply_event(uow, now, principal, membership, "purge", expected_version=expected_version)
    uow.commit()
    return MembershipView.of(membership)
