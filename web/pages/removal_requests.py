"""Removal requests on the pages: the member asks from their Organizations page (on the
card of an organization they may not leave on their own); the organization's admin
answers on *Removal requests*, sorted by due date with the overdue ones first.

The decisions are ``memberships.removal_requests``'s, as for the API. Every POST
answers with a redirect; a decline without a reason comes back with the error next
to that request's reason field and what was typed kept.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from memberships import reading, removal_requests
from memberships.errors import (
    HomeOrganization,
    InvalidInput,
    LeaveAllowed,
    RemovalRequestClosed,
    RemovalRequestOpen,
    TransitionNotAllowed,
)
from web.pages import page_blueprint
from web.pages import session as auth
from web.pages.context import clock, settings, unit_of_work

bp = page_blueprint("pages_removal_requests", __name__)

PAGE_SIZE = 50


@bp.post("/account/organizations/<org>/removal-requests")
@auth.requires_sign_in
def ask(org: str) -> Response:
    """The member's "Ask <Org> to remove me"."""
    try:
        with unit_of_work() as uow:
            made = removal_requests.open_request(
                uow, clock(), auth.principal(), org, request.form.get("message")
            )
    except (
        HomeOrganization,
        LeaveAllowed,
        RemovalRequestOpen,
        TransitionNotAllowed,
        InvalidInput,
    ) as refused:
        flash(refused.detail, "error")
        return redirect(url_for("pages_account.organizations"), 303)
    flash(
        f"Your request was sent to {made.organization.display_name}. It must answer by "
        f"{made.due_by.day} {made.due_by:%b %Y}.",
        "success",
    )
    return redirect(url_for("pages_account.organizations", _anchor=f"org-{org}"), 303)


@bp.get("/admin/<org>/removal-requests")
@auth.requires_sign_in
def listing(org: str) -> str:
    cursor = request.args.get("cursor") or None
    status = request.args.get("status") or None
    with unit_of_work() as uow:
        organization = reading.get_organization(uow, clock(), auth.principal(), org)
        page = removal_requests.list_requests(
            uow, clock(), auth.principal(), org, status=status, cursor=cursor, limit=PAGE_SIZE
        )
    return render_template(
        "pages/removal_requests.html",
        org=organization,
        page=page,
        status=status,
        deadline=settings().removal_request_deadline,
        retention_period=settings().retention_period,
    )


@bp.post("/admin/<org>/removal-requests/<request_id>/approve")
@auth.requires_sign_in
def approve(org: str, request_id: str) -> Response:
    try:
        with unit_of_work() as uow:
            answered = removal_requests.approve(uow, clock(), auth.principal(), org, request_id)
    except (RemovalRequestClosed, TransitionNotAllowed) as refused:
        flash(refused.detail, "error")
        return redirect(url_for("pages_removal_requests.listing", org=org), 303)
    who = answered.member_display_name or answered.member_email or "The member"
    what = (
        "moved to Deleted users, where you can restore them"
        if answered.membership_state == "soft-deleted"
        else "removed, and removal of their data has started"
    )
    flash(f"Request approved: {who} is {what}.", "success")
    return redirect(url_for("pages_removal_requests.listing", org=org), 303)


@bp.post("/admin/<org>/removal-requests/<request_id>/decline")
@auth.requires_sign_in
def decline(org: str, request_id: str) -> Response:
    reason = request.form.get("reason", "")
    try:
        with unit_of_work() as uow:
            answered = removal_requests.decline(
                uow, clock(), auth.principal(), org, request_id, reason
            )
    except InvalidInput as error:
        # Flask's session stores any JSON value: the page puts the error by the field.
        field_errors = {e["field"]: e["message"] for e in error.extra.get("errors", [])}
        entered: Any = {"request_id": request_id, "errors": field_errors, "reason": reason}
        flash(entered, "form-error")
        return redirect(
            url_for("pages_removal_requests.listing", org=org, _anchor=f"decline-{request_id}"),
            303,
        )
    except RemovalRequestClosed as refused:
        flash(refused.detail, "error")
        return redirect(url_for("pages_removal_requests.listing", org=org), 303)
    who = answered.member_display_name or answered.member_email or "the member"
    flash(f"Request declined: {who} will read your reason.", "success")
    return redirect(url_for("pages_removal_requests.listing", org=org), 303)
