"""An organization's admin: its privacy profile, its external collaboration settings,
its audit log, and adding guests.

The use cases check the admin role in *that* organization (``403`` otherwise).
"""

from __future__ import annotations

from flask import g, url_for

from memberships import admin, provisioning, reading
from web.openapi import header, problems
from web.preconditions import etag
from web.schemas import (
    AuditEventPage,
    ExternalCollaboration,
    ExternalCollaborationIn,
    GuestIn,
    Membership,
    Organization,
    PageQuery,
    PrivacyProfile,
    PrivacyProfileIn,
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
@bp.output(Membership, status_code=201, description="The new guest membership.")
@bp.doc(
    operation_id="addGuest",
    summary="Add a guest",
    description="A B2B collaboration or B2B direct connect membership for an existing user "
    f"(by id or e-mail). {ORG}",
    responses={
        **problems("not-found", "forbidden", "invalid-input", "already-exists"),
        201: {
            "headers": {
                "Location": header("The new membership."),
                "ETag": header("Its version."),
            }
        },
    },
)
def add_guest(org: str, body: GuestIn) -> tuple[Membership, int, dict[str, str]]:
    s = services()
    with s.uow() as uow:
        view = provisioning.add_guest(uow, s.clock, principal(), org, body.user, body.kind)
    g.membership_id, g.organization_id = view.id, view.organization_id
    location = url_for(
        "memberships.get_membership", org=view.organization_id, membership_id=view.id
    )
    return Membership.of(view), 201, {"Location": location, "ETag": etag(view.version)}
