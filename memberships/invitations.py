"""Guests join by invitation: an admin invites an e-mail address, the person accepts.

The admin learns nothing about the person from an invitation: it is made (``201``)
whether or not the address belongs to anyone, is already a member, or is someone's
home organization. Only the person signed in with that e-mail sees it, and only
their acceptance makes the membership. Each step is audited; the invitee, who is
no admin of the organization, appears in its audit log under a pseudonym (the new
membership's once accepted, the invitation's id when declining), never their user id.
"""

from __future__ import annotations

from datetime import datetime

from memberships.clock import Clock
from memberships.decisions import admin_organization, audit, deny
from memberships.errors import (
    AccountDisabled,
    AlreadyExists,
    InvalidInput,
    InvitationClosed,
    NotFound,
)
from memberships.principal import Principal
from memberships.reading import page_of
from memberships.validation import valid_email
from memberships.views import InvitationView, MembershipView, MyInvitation, OrganizationView, Page
from statemachines.membership import MembershipKind
from store.invitations import PENDING
from store.models import Invitation, Organization, User
from store.unit_of_work import UnitOfWork

GUEST_KINDS = (MembershipKind.B2B_COLLABORATION.value, MembershipKind.B2B_DIRECT_CONNECT.value)


def email_key(email: str) -> str:
    """What an invitation's address is matched on: the e-mail normalized, in lower case
    (as users' e-mails are stored)."""
    return email.strip().lower()


def invite_guest(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, email: str, kind: str
) -> InvitationView:
    """Invite ``email`` to ``org_ref`` as a guest of ``kind``; valid for the invitation TTL.

    Raises ``InvalidInput`` (e-mail, kind), ``AlreadyExists`` (an invitation to that
    address is still pending there) or ``NotFound`` (no such organization, or not its admin).
    """
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "invite_guest")
    if kind not in GUEST_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(GUEST_KINDS)}", field="kind")
    email = email.strip()
    key = valid_email(email, "email")  # checked and normalized: what is matched
    pending = uow.invitations.pending_to(org.id, key, now)
    if pending is not None:
        raise AlreadyExists(
            f"An invitation to {email} is pending: revoke it first, or wait until it expires.",
            invitation_id=pending,
        )
    invitation = Invitation(
        organization_id=org.id,
        email=email,
        email_key=key,
        kind=kind,
        status=PENDING,
        invited_by=principal.id,
        created_at=now,
        expires_at=now + uow.policy.invitation_ttl,
    )
    uow.invitations.add(invitation)
    audit(uow, now, principal, "invite_guest", organization_id=org.id, reason=kind)
    uow.commit()
    return InvitationView.of(invitation, now)


def list_invitations(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """The organization's invitations in every status, oldest first, cursor-paginated."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "list_invitations")
    return page_of(
        cursor,
        limit,
        lambda after, n: uow.invitations.page_of(org.id, after, n),
        lambda i: InvitationView.of(i, now),
    )


def revoke_invitation(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, invitation_id: str
) -> InvitationView:
    """Withdraw a pending invitation. Raises ``NotFound`` or ``InvitationClosed`` (audited)."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "revoke_invitation")
    invitation = uow.invitations.get((invitation_id or "").strip().lower())
    if invitation is None or invitation.organization_id != org.id:
        raise NotFound(f"No invitation {invitation_id!r} in {org.domain}.")
    _require_pending(uow, now, principal, invitation, "revoke_invitation", actor=None)
    invitation.status = "revoked"
    invitation.responded_at = now
    audit(uow, now, principal, "revoke_invitation", organization_id=org.id, reason=invitation.kind)
    uow.commit()
    return InvitationView.of(invitation, now)


def my_invitations(uow: UnitOfWork, clock: Clock, principal: Principal) -> list[MyInvitation]:
    """The pending, unexpired invitations addressed to the signed-in user's e-mail."""
    now = clock()
    user = _caller(uow, principal)
    if not user.email:
        return []
    rows = uow.invitations.pending_for(email_key(user.email), now)
    return [MyInvitation(InvitationView.of(i, now), OrganizationView.of(o)) for i, o in rows]


def accept_invitation(
    uow: UnitOfWork, clock: Clock, principal: Principal, invitation_id: str
) -> MembershipView:
    """The invitee accepts: their guest membership is made, ``active``.

    Raises ``NotFound`` (no invitation addressed to the caller's e-mail),
    ``InvitationClosed`` (no longer pending, or expired), ``AccountDisabled`` (the
    caller's account is disabled) or ``AlreadyExists`` (already a member there, home
    included); the refusals about the invitation are audited.
    """
    now = clock()
    user, invitation, org = _my_invitation(uow, principal, invitation_id)
    _require_pending(uow, now, principal, invitation, "accept_invitation", actor=invitation.id)
    if uow.directory.is_disabled(user.id, org.id):
        deny(
            uow,
            now,
            principal,
            "accept_invitation",
            AccountDisabled(
                "Your account is disabled, so it can't join an organization. Contact your "
                "home organization's admin.",
                contacts={},
            ),
            organization_id=org.id,
            actor=invitation.id,
        )
    membership = (
        None
        if user.home_organization_id == org.id
        else uow.memberships.add_membership(user, org.id, invitation.kind, now)
    )
    if membership is None:
        raise AlreadyExists(f"You are already a member of {org.display_name}.")
    invitation.status = "accepted"
    invitation.responded_at = now
    invitation.membership_id = membership.id
    audit(
        uow,
        now,
        principal,
        "accept_invitation",
        membership=membership,
        to_state=membership.state,
        reason=invitation.kind,
    )
    uow.commit()
    return MembershipView.of(membership)


def decline_invitation(
    uow: UnitOfWork, clock: Clock, principal: Principal, invitation_id: str
) -> InvitationView:
    """The invitee says no. Raises ``NotFound`` or ``InvitationClosed`` (audited)."""
    now = clock()
    _user, invitation, org = _my_invitation(uow, principal, invitation_id)
    _require_pending(uow, now, principal, invitation, "decline_invitation", actor=invitation.id)
    invitation.status = "declined"
    invitation.responded_at = now
    audit(
        uow,
        now,
        principal,
        "decline_invitation",
        organization_id=org.id,
        reason=invitation.kind,
        actor=invitation.id,
    )
    uow.commit()
    return InvitationView.of(invitation, now)


def _caller(uow: UnitOfWork, principal: Principal) -> User:
    user = uow.directory.user(principal.id)
    if user is None:
        raise NotFound("The signed-in user is not known to this service.")
    return user


def _my_invitation(
    uow: UnitOfWork, principal: Principal, invitation_id: str
) -> tuple[User, Invitation, Organization]:
    """The invitation, when it is addressed to the caller's e-mail; else ``NotFound``."""
    user = _caller(uow, principal)
    invitation = uow.invitations.get((invitation_id or "").strip().lower())
    if invitation is None or not user.email or invitation.email_key != email_key(user.email):
        raise NotFound(f"You have no invitation {invitation_id!r}.")
    org = uow.directory.organization(invitation.organization_id)
    assert org is not None  # a foreign key
    return user, invitation, org


def _require_pending(
    uow: UnitOfWork,
    now: datetime,
    principal: Principal,
    invitation: Invitation,
    action: str,
    *,
    actor: str | None,
) -> None:
    status = InvitationView.of(invitation, now).status
    if status == PENDING:
        return
    deny(
        uow,
        now,
        principal,
        action,
        InvitationClosed(f"The invitation is {status}.", invitation_status=status),
        organization_id=invitation.organization_id,
        actor=actor,
    )
