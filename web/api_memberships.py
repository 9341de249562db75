"""An organization's admin: its memberships, removing guests, and the deleted users
(restore within the retention period, or delete permanently).

Mutations take ``If-Match`` (the ``ETag`` of the membership) and answer ``412`` when
someone changed the membership since it was read.
"""

from __future__ import annotations

from flask import g

from memberships import admin, reading, selection
from memberships.views import MembershipView
from web.errors import problem_type, status_of
from web.openapi import ResponsesDoc, custom_method_rule, header, problems
from web.preconditions import etag, expected_version
from web.schemas import (
    AuditEvent,
    AuditEventList,
    Membership,
    MembershipPage,
    MembershipQuery,
    MembershipWithGrants,
    PageQuery,
    SelectionIn,
    SelectionProblem,
    SelectionResult,
    SelectionResults,
    no_body,
)
from web.services import principal, services
from web.v1 import PREFIX, blueprint

bp = blueprint("memberships", __name__, tag="Organization admin")

ORG = "`{org}` is the organization's id (a GUID) or its domain name."
MUTATION_PROBLEMS = ("not-found", "forbidden", "precondition-failed", "conflict", "bad-request")


def _with_etag(status: int, description: str) -> ResponsesDoc:
    return {status: {"description": description, "headers": {"ETag": header("Its version.")}}}


def _mutated(view: MembershipView, status: int, body: Membership) -> tuple[Membership, int, dict]:
    g.membership_id, g.organization_id = view.id, view.organization_id
    return body, status, {"ETag": etag(view.version)}


@bp.get("/organizations/<org>/memberships")
@bp.input(MembershipQuery, location="query", arg_name="query")
@bp.output(MembershipPage)
@bp.doc(
    operation_id="listMemberships",
    summary="List memberships",
    description=f"Filtered by `state` and `kind`; cursor-paginated. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def list_memberships(org: str, query: MembershipQuery) -> MembershipPage:
    s = services()
    with s.uow() as uow:
        page = reading.list_memberships(
            uow,
            s.clock,
            principal(),
            org,
            state=query.state,
            kind=query.kind,
            cursor=query.cursor,
            limit=query.limit,
        )
    return MembershipPage.of(page)


@bp.get("/organizations/<org>/memberships/<membership_id>")
@bp.output(MembershipWithGrants)
@bp.doc(
    operation_id="getMembership",
    summary="Show a membership",
    description=f"With its grants and, as `ETag`, its version. {ORG}",
    responses={**problems("not-found", "forbidden"), **_with_etag(200, "The membership.")},
)
def get_membership(org: str, membership_id: str) -> tuple[MembershipWithGrants, int, dict]:
    s = services()
    with s.uow() as uow:
        view = reading.get_membership(uow, s.clock, principal(), org, membership_id)
    return MembershipWithGrants.of(view), 200, {"ETag": etag(view.version)}


@bp.get("/organizations/<org>/memberships/<membership_id>/history")
@bp.output(AuditEventList)
@bp.doc(
    operation_id="getMembershipHistory",
    summary="Show a membership's audit trail",
    description=f"Every decision about the membership, oldest first. {ORG}",
    responses=problems("not-found", "forbidden"),
)
def membership_history(org: str, membership_id: str) -> AuditEventList:
    s = services()
    with s.uow() as uow:
        events = reading.membership_history(uow, s.clock, principal(), org, membership_id)
    return AuditEventList(items=[AuditEvent.of(e) for e in events])


@bp.delete("/organizations/<org>/memberships/<membership_id>")
@no_body(bp)
@bp.output(Membership, status_code=202, description="Accepted: removed.")
@bp.doc(
    operation_id="removeMembership",
    summary="Remove a guest",
    description="B2B collaboration: soft-deleted, restorable until `purgeDueAt`. B2B direct "
    f"connect: `purge-pending`, data removal starts. {ORG}",
    responses={
        **problems(*MUTATION_PROBLEMS, "home-organization", "transition-not-allowed"),
        **_with_etag(202, "Accepted: removed."),
    },
)
def remove_membership(org: str, membership_id: str) -> tuple[Membership, int, dict]:
    s = services()
    version = expected_version()
    with s.uow() as uow:
        view = admin.remove(uow, s.clock, principal(), org, membership_id, version)
    return _mutated(view, 202, Membership.of(view))


@bp.get("/organizations/<org>/deleted-users")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(MembershipPage)
@bp.doc(
    operation_id="listDeletedUsers",
    summary="List deleted users",
    description="Soft-deleted memberships, restorable until their `purgeDueAt`; "
    f"cursor-paginated. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def list_deleted_users(org: str, query: PageQuery) -> MembershipPage:
    s = services()
    with s.uow() as uow:
        page = reading.list_deleted_users(
            uow, s.clock, principal(), org, cursor=query.cursor, limit=query.limit
        )
    return MembershipPage.of(page)


@bp.post("/organizations/<org>/deleted-users/<membership_id>/restore")
@no_body(bp)
@bp.output(MembershipWithGrants, description="Restored, with exactly the grants it had.")
@bp.doc(
    operation_id="restoreDeletedUser",
    summary="Restore a deleted user",
    description="Within the retention period only: after `purgeDueAt`, `409 "
    f"restore-window-closed`. {ORG}",
    responses={
        **problems(*MUTATION_PROBLEMS, "transition-not-allowed", "restore-window-closed"),
        **_with_etag(200, "Restored, with exactly the grants it had."),
    },
)
def restore_deleted_user(org: str, membership_id: str) -> tuple[Membership, int, dict]:
    s = services()
    version = expected_version()
    with s.uow() as uow:
        view = admin.restore(uow, s.clock, principal(), org, membership_id, version)
    return _mutated(view, 200, MembershipWithGrants.of(view))


@bp.delete("/organizations/<org>/deleted-users/<membership_id>")
@no_body(bp)
@bp.output(Membership, status_code=202, description="Accepted: data removal has started.")
@bp.doc(
    operation_id="purgeDeletedUser",
    summary="Delete a deleted user permanently",
    description="Irrevocable: the membership becomes `purge-pending` and its data is removed "
    f"within the data-removal window. {ORG}",
    responses={
        **problems(*MUTATION_PROBLEMS, "transition-not-allowed"),
        **_with_etag(202, "Accepted: data removal has started."),
    },
)
def purge_deleted_user(org: str, membership_id: str) -> tuple[Membership, int, dict]:
    s = services()
    version = expected_version()
    with s.uow() as uow:
        view = admin.purge(uow, s.clock, principal(), org, membership_id, version)
    return _mutated(view, 202, Membership.of(view))


BULK = (
    "Each id is decided on its own, all or nothing, and audited on its own: one refusal "
    "neither blocks nor undoes the others. `items` has one outcome per distinct id, with "
    "the status and problem a single call would get. At most 500 ids. "
)


def _results(outcomes: list[selection.SelectionOutcome], success: int) -> SelectionResults:
    items = []
    for outcome in outcomes:
        if outcome.membership is not None:
            items.append(
                SelectionResult(
                    id=outcome.membership_id,
                    status=success,
                    membership=Membership.of(outcome.membership),
                    problem=None,
                )
            )
        elif outcome.error is not None:
            error = outcome.error
            items.append(
                SelectionResult(
                    id=outcome.membership_id,
                    status=status_of(error),
                    membership=None,
                    problem=SelectionProblem(
                        type=problem_type(error.code),
                        title=error.title,
                        status=status_of(error),
                        detail=error.detail,
                    ),
                )
            )
    return SelectionResults(items=items)


@bp.post(custom_method_rule(PREFIX, "/organizations/<org>/deleted-users:restore"))
@bp.input(SelectionIn, arg_name="body")
@bp.output(SelectionResults, description="One outcome per id.")
@bp.doc(
    summary="Restore several deleted users",
    operation_id="restoreDeletedUsers",
    description=BULK + ORG,
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def restore_deleted_users(org: str, body: SelectionIn) -> SelectionResults:
    s = services()
    with s.uow() as uow:
        outcomes = selection.decide_selected(uow, s.clock, principal(), org, body.ids, "restore")
    return _results(outcomes, 200)


@bp.post(custom_method_rule(PREFIX, "/organizations/<org>/memberships:remove"))
@bp.input(SelectionIn, arg_name="body")
@bp.output(SelectionResults, description="One outcome per id.")
@bp.doc(
    summary="Remove several guests",
    operation_id="removeMemberships",
    description=BULK + ORG,
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def remove_memberships(org: str, body: SelectionIn) -> SelectionResults:
    s = services()
    with s.uow() as uow:
        outcomes = selection.decide_selected(uow, s.clock, principal(), org, body.ids, "remove")
    return _results(outcomes, 202)
