"""An organization's admin: its privacy profile, its external collaboration settings,
its audit log, and inviting guests.

The use cases check the admin role in *that* organization: a caller without one gets
``404 not-found``, exactly as for an organization that does not exist.
"""

from __future__ import annotations

from memberships import admin, invitations, reading
from web.openapi import problems
from web.schemas import (
    AuditEventPage,
    ExternalCollaboration,
    ExternalCollaborationIn,
    GuestIn,
    Invitation,
    InvitationPage,
    Organization,
    PageQuery,
    PrivacyProfile,
    PrivacyProfileIn,
    no_body,
)
from web.services import principal, services
from web.v1 import blueprint

bp = blueprint("organizations", __name__, tag="Organization admin")

ORG = "`{org}` is the organization's id (a GUID) or its domain name."


@bp.get("/organizations/<org>")
@bp.output(Organization)
@bp.doc(
    operation_id="getOrganization",
    summary="Show an organization",
    description=f"With its privacy profile and settings. {ORG}",
    responses=problems("not-found", "forbidden"),
)
def get_organization(org: str) -> Organization:
    s = services()
    with s.uow() as uow:
        return Organization.of(reading.get_organization(uow, s.clock, principal(), org))


@bp.put("/organizations/<org>/privacy-profile")
@bp.input(PrivacyProfileIn, arg_name="body")
@bp.output(PrivacyProfile)
@bp.doc(
    operation_id="setPrivacyProfile",
    summary="Set the privacy profile",
    description="The privacy contact's e-mail and the privacy statement URL (http or https, "
    f"at most 255 characters). {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def put_privacy_profile(org: str, body: PrivacyProfileIn) -> PrivacyProfile:
    s = services()
    with s.uow() as uow:
        view = admin.set_privacy_profile(
            uow, s.clock, principal(), org, body.contact_email, body.statement_url
        )
    return PrivacyProfile.of(view)


@bp.get("/organizations/<org>/settings/external-collaboration")
@bp.output(ExternalCollaboration)
@bp.doc(
    operation_id="getExternalCollaboration",
    summary="Show the external collaboration settings",
    description=f"Whether external users may leave on their own. {ORG}",
    responses=problems("not-found", "forbidden"),
)
def get_external_collaboration(org: str) -> ExternalCollaboration:
    s = services()
    with s.uow() as uow:
        return ExternalCollaboration.of(reading.get_organization(uow, s.clock, principal(), org))


@bp.patch("/organizations/<org>/settings/external-collaboration")
@bp.input(ExternalCollaborationIn, arg_name="body")
@bp.output(ExternalCollaboration)
@bp.doc(
    operation_id="updateExternalCollaboration",
    summary="Change the external user leave setting",
    description="Only while the organization has a privacy profile (both the contact "
    f"e-mail and the statement URL); otherwise `409 privacy-profile-required`. {ORG}",
    responses=problems("not-found", "forbidden", "privacy-profile-required"),
)
def patch_external_collaboration(org: str, body: ExternalCollaborationIn) -> ExternalCollaboration:
    s = services()
    with s.uow() as uow:
        view = admin.set_external_user_leave_allowed(
            uow, s.clock, principal(), org, body.external_user_leave_allowed
        )
    return ExternalCollaboration.of(view)


@bp.get("/organizations/<org>/audit-events")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(AuditEventPage)
@bp.doc(
    operation_id="listAuditEvents",
    summary="Read the audit log",
    description="Every decision about the organization, allowed or denied, oldest first; "
    f"cursor-paginated. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def list_audit_events(org: str, query: PageQuery) -> AuditEventPage:
    s = services()
    with s.uow() as uow:
        page = reading.list_audit_events(
            uow, s.clock, principal(), org, cursor=query.cursor, limit=query.limit
        )
    return AuditEventPage.of(page)


@bp.post("/organizations/<org>/guests")
@bp.input(GuestIn, arg_name="body")
@bp.output(Invitation, status_code=201, description="The invitation, `pending`.")
@bp.doc(
    operation_id="addGuest",
    summary="Invite a guest",
    description="An invitation for an e-mail address to join as a B2B collaboration or B2B "
    "direct connect guest. It is made whether or not the address belongs to anyone and "
    "says nothing about the person; the membership exists only once the person, signed "
    "in with that e-mail, accepts it (`POST /v1/me/invitations/{id}/accept`). It expires "
    "after `INVITATION_TTL` (30 days by default). A second invitation to the same address "
    f"while one is pending is `409 already-exists`. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input", "already-exists"),
)
def invite_guest(org: str, body: GuestIn) -> tuple[Invitation, int]:
    s = services()
    with s.uow() as uow:
        view = invitations.invite_guest(uow, s.clock, principal(), org, body.email, body.kind)
    return Invitation.of(view), 201


@bp.get("/organizations/<org>/invitations")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(InvitationPage)
@bp.doc(
    operation_id="listInvitations",
    summary="List invitations",
    description="Every invitation of the organization (pending, accepted, declined, "
    f"revoked, expired), cursor-paginated. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def list_invitations(org: str, query: PageQuery) -> InvitationPage:
    s = services()
    with s.uow() as uow:
        page = invitations.list_invitations(
            uow, s.clock, principal(), org, cursor=query.cursor, limit=query.limit
        )
    return InvitationPage.of(page)


@bp.delete("/organizations/<org>/invitations/<invitation_id>")
@no_body(bp)
@bp.output(Invitation, description="The invitation, `revoked`.")
@bp.doc(
    operation_id="revokeInvitation",
    summary="Revoke an invitation",
    description="Only a pending invitation can be revoked; any other is `409 "
    f"invitation-closed`. {ORG}",
    responses=problems("not-found", "forbidden", "invitation-closed"),
)
def revoke_invitation(org: str, invitation_id: str) -> Invitation:
    s = services()
    with s.uow() as uow:
        view = invitations.revoke_invitation(uow, s.clock, principal(), org, invitation_id)
    return Invitation.of(view)
