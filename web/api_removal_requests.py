"""Removal requests over HTTP: a member who may not leave on their own asks the
organization to remove them; its admins list the requests and approve or decline them.

The rules are in ``memberships.removal_requests``; the shapes are here, next to the
operations (they are used nowhere else).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from flask import g
from pydantic import Field

from memberships import removal_requests
from memberships.removal_requests import MAX_MESSAGE, MAX_REASON, RemovalRequestView
from memberships.views import Page
from web.openapi import problems
from web.schemas import Input, OrganizationRef, Output, PageQuery, no_body, optional_body
from web.services import principal, services
from web.v1 import blueprint

me = blueprint("removal_requests_me", __name__, tag="Self-service")
bp = blueprint("removal_requests", __name__, tag="Organization admin")


ORG = "`{org}` is the organization's id (a GUID) or its domain name."

RemovalRequestStatusName = Literal["open", "approved", "declined", "closed"]
ClosedReasonName = Literal["removed-by-organization", "left", "membership-ended"]


# ---- shapes ------------------------------------------------------------------------------


class RemovalRequestIn(Input):
    message: str | None = Field(
        default=None,
        max_length=MAX_MESSAGE,
        description="What the member wants the organization to know (optional; erased when "
        "the membership is purged).",
    )


class DeclineIn(Input):
    reason: str = Field(
        max_length=MAX_REASON,
        description="Why the organization declines: the member reads it. Required.",
    )


class RemovalRequestQuery(PageQuery):
    status: Literal["open", "approved", "declined", "closed", "overdue"] | None = Field(
        default=None,
        description="Only requests in this status (`overdue`: open and past `dueBy`); absent "
        "or empty: every status.",
    )


class MyRemovalRequest(Output):
    """A removal request as the member who made it reads it."""

    id: str
    organization: OrganizationRef
    membership_id: str
    status: RemovalRequestStatusName
    overdue: bool = Field(description="Still open and past `dueBy`.")
    message: str | None
    created_at: datetime
    due_by: datetime = Field(description="When the organization must have answered by.")
    answered_at: datetime | None
    decline_reason: str | None = Field(description="Why it was declined, in its words.")
    closed_at: datetime | None
    closed_reason: ClosedReasonName | None = Field(
        description="Why it ended by itself: `removed-by-organization`, `left` (the member "
        "left on their own), `membership-ended`."
    )
    closed_reason_text: str | None = Field(description="The same, as a sentence.")

    @classmethod
    def of(cls, r: RemovalRequestView) -> MyRemovalRequest:
        return cls(
            id=r.id,
            organization=OrganizationRef.of(r.organization),
            membership_id=r.membership_id,
            status=r.status,  # type: ignore[arg-type]  # validated against the Literal
            overdue=r.overdue,
            message=r.message,
            created_at=r.created_at,
            due_by=r.due_by,
            answered_at=r.answered_at,
            decline_reason=r.decline_reason,
            closed_at=r.closed_at,
            closed_reason=r.closed_reason,  # type: ignore[arg-type]
            closed_reason_text=r.closed_reason_text,
        )


class MyRemovalRequestList(Output):
    items: list[MyRemovalRequest]


class RemovalRequest(Output):
    """A member's removal request as the organization's admin reads it."""

    id: str
    organization_id: str
    membership_id: str
    email: str | None = Field(description="The member's e-mail in this organization.")
    display_name: str | None
    status: RemovalRequestStatusName
    overdue: bool = Field(description="Still open and past `dueBy`: answer it first.")
    message: str | None
    created_at: datetime
    due_by: datetime
    overdue_at: datetime | None = Field(description="When the sweep marked it overdue.")
    answered_at: datetime | None
    answered_by: str | None = Field(description="The admin who answered (user id).")
    decline_reason: str | None
    closed_at: datetime | None
    closed_reason: ClosedReasonName | None

    @classmethod
    def of(cls, r: RemovalRequestView) -> RemovalRequest:
        return cls(
            id=r.id,
            organization_id=r.organization.id,
            membership_id=r.membership_id,
            email=r.member_email,
            display_name=r.member_display_name,
            status=r.status,  # type: ignore[arg-type]
            overdue=r.overdue,
            message=r.message,
            created_at=r.created_at,
            due_by=r.due_by,
            overdue_at=r.overdue_at,
            answered_at=r.answered_at,
            answered_by=r.answered_by,
            decline_reason=r.decline_reason,
            closed_at=r.closed_at,
            closed_reason=r.closed_reason,  # type: ignore[arg-type]
        )


class RemovalRequestPage(Output):
    items: list[RemovalRequest]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")

    @classmethod
    def of(cls, page: Page) -> RemovalRequestPage:
        return cls(items=[RemovalRequest.of(r) for r in page.items], next_cursor=page.next_cursor)


# ---- the member --------------------------------------------------------------------------


_optional_body = optional_body(
    me, RemovalRequestIn, 'Send a JSON object, {} or {"message": "…"}, or no body at all.'
)


@me.post("/me/organizations/<org>/removal-requests")
@_optional_body
@me.output(MyRemovalRequest, status_code=201, description="The request, `open`.")
@me.doc(
    operation_id="createRemovalRequest",
    summary="Ask an organization to remove me",
    description="For a member whose leave is refused with `leave-disabled` (the "
    "organization does not let external users leave) or `account-disabled`: the "
    "organization must answer by `dueBy` (`REMOVAL_REQUEST_DEADLINE`, 30 days by default). "
    "A home organization is `403 home-organization`; a member who may leave is `409 "
    "leave-allowed` (leave instead); a second request while one is open is `409 "
    "removal-request-open` with its `removalRequestId`; a membership that is not active or "
    f"restored is `409 transition-not-allowed`. {ORG}",
    responses=problems(
        "not-found",
        "home-organization",
        "leave-allowed",
        "removal-request-open",
        "transition-not-allowed",
        "invalid-input",
    ),
)
def create_removal_request(org: str, body: RemovalRequestIn) -> tuple[MyRemovalRequest, int]:
    s = services()
    with s.uow() as uow:
        view = removal_requests.open_request(uow, s.clock, principal(), org, body.message)
    # The stored response of an Idempotency-Key holds the message: erased with the membership.
    g.membership_id, g.organization_id = view.membership_id, view.organization.id
    return MyRemovalRequest.of(view), 201


@me.get("/me/removal-requests")
@me.output(MyRemovalRequestList)
@me.doc(
    operation_id="listMyRemovalRequests",
    summary="List my removal requests",
    description="Every removal request the signed-in user made, newest first, with its "
    "status (`open`, `approved`, `declined` with the organization's reason, `closed` with "
    "why) and whether it is overdue.",
    responses=problems("not-found"),
)
def list_my_removal_requests() -> MyRemovalRequestList:
    s = services()
    with s.uow() as uow:
        found = removal_requests.my_requests(uow, s.clock, principal())
    return MyRemovalRequestList(items=[MyRemovalRequest.of(r) for r in found])


# ---- the organization's admin ----------------------------------------------------------------


@bp.get("/organizations/<org>/removal-requests")
@bp.input(RemovalRequestQuery, location="query", arg_name="query")
@bp.output(RemovalRequestPage)
@bp.doc(
    operation_id="listRemovalRequests",
    summary="List removal requests",
    description="Members' requests to be removed: open ones first by `dueBy` (the overdue "
    f"ones lead), then the answered and closed ones; cursor-paginated. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def list_removal_requests(org: str, query: RemovalRequestQuery) -> RemovalRequestPage:
    s = services()
    with s.uow() as uow:
        page = removal_requests.list_requests(
            uow,
            s.clock,
            principal(),
            org,
            status=query.status,
            cursor=query.cursor,
            limit=query.limit,
        )
    return RemovalRequestPage.of(page)


@bp.post("/organizations/<org>/removal-requests/<request_id>/approve")
@no_body(bp)
@bp.output(RemovalRequest, description="The request, `approved`; the membership removed.")
@bp.doc(
    operation_id="approveRemovalRequest",
    summary="Approve a removal request",
    description="Removes the membership exactly as `DELETE …/memberships/{id}` does, in the "
    "same transaction: a B2B collaboration guest is soft-deleted (restorable for the "
    "retention period), a B2B direct connect guest's data removal starts at once. A request "
    f"no longer open is `409 removal-request-closed`. {ORG}",
    responses=problems(
        "not-found", "forbidden", "removal-request-closed", "transition-not-allowed", "conflict"
    ),
)
def approve_removal_request(org: str, request_id: str) -> RemovalRequest:
    s = services()
    with s.uow() as uow:
        view = removal_requests.approve(uow, s.clock, principal(), org, request_id)
    g.membership_id, g.organization_id = view.membership_id, view.organization.id
    return RemovalRequest.of(view)


@bp.post("/organizations/<org>/removal-requests/<request_id>/decline")
@bp.input(DeclineIn, arg_name="body")
@bp.output(RemovalRequest, description="The request, `declined`, with the reason.")
@bp.doc(
    operation_id="declineRemovalRequest",
    summary="Decline a removal request",
    description="The membership stays; the member reads `reason` (required, not blank). A "
    f"request no longer open is `409 removal-request-closed`. {ORG}",
    responses=problems("not-found", "forbidden", "removal-request-closed", "invalid-input"),
)
def decline_removal_request(org: str, request_id: str, body: DeclineIn) -> RemovalRequest:
    s = services()
    with s.uow() as uow:
        view = removal_requests.decline(uow, s.clock, principal(), org, request_id, body.reason)
    g.membership_id, g.organization_id = view.membership_id, view.organization.id
    return RemovalRequest.of(view)
