"""Self-service: the caller's own organizations, and leaving one.

Every lookup is keyed by the signed-in user, so another member's membership is
simply not found (``404``), never shown.
"""

from __future__ import annotations

from flask import g, url_for

from memberships import invitations, self_service
from web.openapi import header, problems
from web.preconditions import etag, expected_version
from web.schemas import (
    Invitation,
    MyInvitationList,
    MyInvitationOut,
    MyMembership,
    MyOrganization,
    MyOrganizationList,
    no_body,
)
from web.services import principal, services
from web.v1 import blueprint

bp = blueprint("me", __name__, tag="Self-service")

ORG = "The organization's id (a GUID) or its domain name, e.g. `contoso.example`."


@bp.get("/me/organizations")
@bp.output(MyOrganizationList)
@bp.doc(
    operation_id="listMyOrganizations",
    summary="List my organizations",
    description="The home organization first (it can never be left), then the others by "
    "name; each says whether it can be left and, if not, why. Shows the memberships the "
    "caller can use and those they are leaving.",
    responses=problems("not-found"),
)
def list_my_organizations() -> MyOrganizationList:
    with services().uow() as uow:
        entries = self_service.list_organizations(uow, principal())
    return MyOrganizationList(items=[MyOrganization.of(e) for e in entries])


@bp.get("/me/organizations/<org>")
@bp.output(MyOrganization)
@bp.doc(
    operation_id="getMyOrganization",
    summary="Show one of my organizations",
    description=f"{ORG} Answers with the membership's state (`leave-pending`, `soft-deleted`, "
    "`purge-pending`, …) until it is purged, then `404`: poll it after leaving. The `ETag` "
    "is the membership's version, for `If-Match` on leave.",
    responses={
        **problems("not-found"),
        200: {"headers": {"ETag": header("The membership's version.")}},
    },
)
def get_my_organization(org: str) -> tuple[MyOrganization, int, dict[str, str]]:
    with services().uow() as uow:
        entry = self_service.get_my_organization(uow, principal(), org)
    return MyOrganization.of(entry), 200, {"ETag": etag(entry.membership.version)}


@bp.post("/me/organizations/<org>/leave")
@no_body(bp)
@bp.output(
    MyMembership,
    status_code=202,
    description="Accepted: the membership is `leave-pending`; poll `Location`.",
)
@bp.doc(
    operation_id="leaveOrganization",
    summary="Leave an organization",
    description=f"{ORG} When leaving is not allowed, nothing changes and the `403` problem "
    "has `reason` (`home-organization`, `account-disabled`, `leave-disabled`) and the "
    "organization's privacy `contacts`: the member must ask its admin or privacy contact.",
    responses={
        **problems(
            "not-found",
            "home-organization",
            "account-disabled",
            "leave-disabled",
            "transition-not-allowed",
            "conflict",
            "precondition-failed",
            "bad-request",
        ),
        202: {
            "headers": {
                "Location": header("Where to poll the membership's state."),
                "ETag": header("The membership's new version."),
            }
        },
    },
)
def leave_organization(org: str) -> tuple[MyMembership, int, dict[str, str]]:
    s = services()
    version = expected_version()
    with s.uow() as uow:
        membership = self_service.request_leave(uow, s.clock, principal(), org, version)
    g.membership_id, g.organization_id = membership.id, membership.organization_id
    location = url_for("me.get_my_organization", org=membership.organization_id)
    return (
        MyMembership.of(membership),
        202,
        {"Location": location, "ETag": etag(membership.version)},
    )


@bp.get("/me/invitations")
@bp.output(MyInvitationList)
@bp.doc(
    operation_id="listMyInvitations",
    summary="List my invitations",
    description="The pending invitations addressed to the e-mail of the signed-in user, "
    "oldest first, each with the organization that sends it. Expired, answered and revoked "
    "ones are not listed.",
    responses=problems("not-found"),
)
def list_my_invitations() -> MyInvitationList:
    s = services()
    with s.uow() as uow:
        found = invitations.my_invitations(uow, s.clock, principal())
    return MyInvitationList(items=[MyInvitationOut.of(i) for i in found])


@bp.post("/me/invitations/<invitation_id>/accept")
@no_body(bp)
@bp.output(MyMembership, status_code=201, description="The new membership, `active`.")
@bp.doc(
    operation_id="acceptInvitation",
    summary="Accept an invitation",
    description="Joins the organization: the guest membership is made now, `active`. An "
    "invitation addressed to another e-mail is `404`; one that is no longer pending "
    "(accepted, declined, revoked or expired) is `409 invitation-closed`; already being a "
    "member there (home included) is `409 already-exists`; a disabled account is `403 "
    "account-disabled`.",
    responses={
        **problems(
            "not-found", "invitation-closed", "already-exists", "account-disabled", "bad-request"
        ),
        201: {
            "headers": {
                "Location": header("The membership, as `GET /v1/me/organizations/{org}`."),
                "ETag": header("The membership's version."),
            }
        },
    },
)
def accept_invitation(invitation_id: str) -> tuple[MyMembership, int, dict[str, str]]:
    s = services()
    with s.uow() as uow:
        membership = invitations.accept_invitation(uow, s.clock, principal(), invitation_id)
    g.membership_id = membership.id
    location = url_for("me.get_my_organization", org=membership.organization_id)
    return (
        MyMembership.of(membership),
        201,
        {"Location": location, "ETag": etag(membership.version)},
    )


@bp.post("/me/invitations/<invitation_id>/decline")
@no_body(bp)
@bp.output(Invitation, description="The invitation, `declined`.")
@bp.doc(
    operation_id="declineInvitation",
    summary="Decline an invitation",
    description="Nothing is made; the organization sees the invitation `declined`. An "
    "invitation that is no longer pending is `409 invitation-closed`.",
    responses=problems("not-found", "invitation-closed", "bad-request"),
)
def decline_invitation(invitation_id: str) -> Invitation:
    s = services()
    with s.uow() as uow:
        view = invitations.decline_invitation(uow, s.clock, principal(), invitation_id)
    return Invitation.of(view)
