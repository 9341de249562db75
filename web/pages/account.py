"""The member's pages: sign in, sign out, and the Organizations page with Leave.

Leave is confirmed before it is sent: with scripts on, a ``<dialog>`` on the
Organizations page; without, the Leave link opens a confirmation page. Every
POST answers with a redirect (post/redirect/get), so a reload never sends a
decision twice; the outcome travels in a flashed message.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from memberships import invitations, removal_requests
from memberships.accounts import (
    AccountView,
    account_of,
    may_sign_in_as,
    organizations_overview,
    users_to_sign_in_as,
)
from memberships.errors import (
    AccountDisabled,
    AlreadyExists,
    InvitationClosed,
    LeaveDenied,
    NotFound,
)
from memberships.invitations import my_invitations
from memberships.notices import get_preferences, set_email_own_changes
from memberships.principal import Principal
from memberships.self_service import request_leave
from web.auth import InvalidToken
from web.pages import page_blueprint
from web.pages import session as auth
from web.pages.context import (
    clock,
    settings,
    token_sign_in_available,
    unit_of_work,
    verify_token,
)

bp = page_blueprint("pages_account", __name__)


def dev_sign_in_enabled() -> bool:
    """Picking a user from a list is for development only: it needs both switches."""
    current = settings()
    return bool(current.dev_sign_in and current.jwt_secret)


@bp.get("/")
@auth.requires_sign_in
def home() -> Response:
    """Where a signed-in person starts: admins on Administration, operators on Operations,
    everyone else on their Organizations."""
    return redirect(_landing(auth.account()))


def _landing(account: AccountView) -> str:
    if account.administers:
        return url_for("pages_admin.index")
    if account.is_operator:
        return url_for("pages_ops.overview")
    return url_for("pages_account.organizations")


def _landing_of(user_id: str) -> str:
    """Where ``user_id`` starts after signing in (Organizations if they are unknown)."""
    try:
        with unit_of_work() as uow:
            return _landing(account_of(uow, Principal.user(user_id)))
    except NotFound:
        return url_for("pages_account.organizations")


@bp.get("/sign-in")
def sign_in() -> str:
    users = []
    if dev_sign_in_enabled():
        with unit_of_work() as uow:
            users = users_to_sign_in_as(uow)
    return render_template(
        "pages/sign_in.html",
        users=users,
        dev_sign_in=dev_sign_in_enabled(),
        token_sign_in=token_sign_in_available(),
        next=auth.safe_next(request.args.get("next")),
    )


@bp.post("/sign-in")
def sign_in_submit() -> Response | tuple[str, int]:
    asked = auth.safe_next(request.form.get("next"))
    next_page = asked or url_for("pages_account.organizations")
    now = clock()()
    if "user_id" in request.form:
        if not dev_sign_in_enabled():
            abort(403, "Signing in by picking a user is only available in development.")
        with unit_of_work() as uow:
            allowed = may_sign_in_as(uow, request.form["user_id"])
        if not allowed:
            flash("That account can't sign in: it is disabled or no longer exists.", "error")
            return redirect(url_for("pages_account.sign_in", next=next_page), 303)
        chosen = request.form["user_id"].strip()
        auth.sign_in(chosen, now + auth.DEV_SESSION_LENGTH)
        return redirect(asked or _landing_of(chosen), 303)
    token = request.form.get("token", "").strip().removeprefix("Bearer ").strip()
    if not token_sign_in_available() or not token:
        flash("Paste the access token your identity provider gave you.", "error")
        return redirect(url_for("pages_account.sign_in", next=next_page), 303)
    try:
        user_id, expires = verify_token(token)
    except InvalidToken as refused:
        flash(f"That token was refused: {refused.reason} Get a new one and try again.", "error")
        return redirect(url_for("pages_account.sign_in", next=next_page), 303)
    until = datetime.fromtimestamp(expires, UTC) if expires else now + auth.DEV_SESSION_LENGTH
    auth.sign_in(user_id, until)
    return redirect(asked or _landing_of(user_id), 303)


@bp.post("/sign-out")
def sign_out() -> Response:
    auth.end_session()
    flash("You are signed out.", "success")
    return redirect(url_for("pages_account.sign_in"), 303)


@bp.get("/account/organizations")
@auth.requires_sign_in
def organizations() -> str:
    tenant = request.args.get("tenantId", "").strip() or None
    with unit_of_work() as uow:
        overview = organizations_overview(uow, auth.principal(), tenant, clock())
        pending = my_invitations(uow, clock(), auth.principal())
        requests = removal_requests.my_requests(uow, clock(), auth.principal())
        preferences = get_preferences(uow, auth.principal())
    return render_template(
        "pages/organizations.html",
        overview=overview,
        invitations=pending,
        my_removal_requests=requests,
        # The newest request of each membership, for its card (the list is newest first).
        removal_requests={r.membership_id: r for r in reversed(requests)},
        mail_preferences=preferences,
        mail_enabled=settings().send_mail,
    )


@bp.post("/account/mail-preferences")
@auth.requires_sign_in
def mail_preferences() -> Response:
    """Turn mail about the member's own changes on or off (changes made by an organization
    or the service are always mailed)."""
    wanted = request.form.get("email_own_changes") == "1"
    with unit_of_work() as uow:
        set_email_own_changes(uow, clock(), auth.principal(), wanted)
    flash(
        "You will also get e-mails about changes you make yourself."
        if wanted
        else "You will get e-mails only about changes an organization or this service makes.",
        "success",
    )
    return redirect(url_for("pages_account.organizations"), 303)


@bp.post("/account/invitations/<invitation_id>/accept")
@auth.requires_sign_in
def accept_invitation(invitation_id: str) -> Response:
    try:
        with unit_of_work() as uow:
            joined = invitations.accept_invitation(uow, clock(), auth.principal(), invitation_id)
    except (InvitationClosed, AlreadyExists, AccountDisabled) as refused:
        flash(refused.detail, "error")
        return redirect(url_for("pages_account.organizations"), 303)
    flash("You accepted the invitation: welcome.", "success")
    return redirect(url_for("pages_account.organizations", tenantId=joined.organization_id), 303)


@bp.post("/account/invitations/<invitation_id>/decline")
@auth.requires_sign_in
def decline_invitation(invitation_id: str) -> Response:
    try:
        with unit_of_work() as uow:
            invitations.decline_invitation(uow, clock(), auth.principal(), invitation_id)
    except InvitationClosed as refused:
        flash(refused.detail, "error")
        return redirect(url_for("pages_account.organizations"), 303)
    flash("You declined the invitation.", "success")
    return redirect(url_for("pages_account.organizations"), 303)


@bp.get("/account/organizations/<org>/leave")
@auth.requires_sign_in
def confirm_leave(org: str) -> str:
    """The confirmation page, or, where the member can't leave, why and whom to ask."""
    with unit_of_work() as uow:
        overview = organizations_overview(uow, auth.principal(), org)
    if overview.focus is None:
        raise NotFound(f"You are not a member of {org!r}.")
    return render_template("pages/confirm_leave.html", entry=overview.focus, overview=overview)


@bp.post("/account/organizations/<org>/leave")
@auth.requires_sign_in
def leave(org: str) -> Response:
    try:
        with unit_of_work() as uow:
            left = request_leave(uow, clock(), auth.principal(), org)
    except LeaveDenied as denied:
        contacts = denied.extra.get("contacts", {})
        # Flask's session stores any JSON value, not only text: base.html reads the fields.
        notice: Any = {
            "title": denied.title,
            "detail": denied.detail,
            "email": contacts.get("privacy_contact_email"),
            "statement_url": contacts.get("privacy_statement_url"),
        }
        flash(notice, "leave-denied")
        return redirect(url_for("pages_account.organizations"), 303)
    flash("Your request to leave was accepted.", "success")
    return redirect(url_for("pages_account.organizations", tenantId=left.organization_id), 303)
