"""An organization admin's pages: external collaboration settings, deleted users, members
and one membership's record.

Whether the signed-in user may see or change anything here is decided by the use
cases (an admin role in *that* organization); a refusal renders the 403 page.
Form refusals the admin can fix on the spot (a bad e-mail, no privacy profile yet)
come back as a message on the same page. Every POST answers with a redirect.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from memberships import admin, reading, selection, timeline
from memberships.errors import InvalidInput, PrivacyProfileRequired
from web.pages import page_blueprint
from web.pages import session as auth
from web.pages.context import clock, settings, unit_of_work
from web.pages.diagram import lifecycle_diagram

bp = page_blueprint("pages_admin", __name__, url_prefix="/admin")

PAGE_SIZE = 50


@bp.get("/")
@auth.requires_sign_in
def index() -> str:
    return render_template("pages/admin_index.html")


@bp.get("/<org>/settings")
@auth.requires_sign_in
def org_settings(org: str) -> str:
    with unit_of_work() as uow:
        organization = reading.get_organization(uow, clock(), auth.principal(), org)
    return render_template("pages/admin_settings.html", org=organization)


@bp.post("/<org>/settings/privacy-profile")
@auth.requires_sign_in
def save_privacy_profile(org: str) -> Response:
    email = request.form.get("contact_email", "")
    url = request.form.get("statement_url", "")
    try:
        with unit_of_work() as uow:
            admin.set_privacy_profile(uow, clock(), auth.principal(), org, email, url)
    except InvalidInput as error:
        # Flask's session stores any JSON value: the settings form reads these fields back.
        field_errors = {e["field"]: e["message"] for e in error.extra.get("errors", [])}
        entered: Any = {"errors": field_errors, "email": email, "url": url}
        flash(entered, "form-error")
        return redirect(url_for("pages_admin.org_settings", org=org, _anchor="privacy"), 303)
    flash("The privacy profile is saved.", "success")
    return redirect(url_for("pages_admin.org_settings", org=org), 303)


@bp.post("/<org>/settings/external-user-leave")
@auth.requires_sign_in
def save_leave_setting(org: str) -> Response:
    choice = request.form.get("allowed")
    if choice not in ("yes", "no"):
        flash("Choose Yes or No.", "error")
        return redirect(url_for("pages_admin.org_settings", org=org), 303)
    try:
        with unit_of_work() as uow:
            admin.set_external_user_leave_allowed(
                uow, clock(), auth.principal(), org, choice == "yes"
            )
    except PrivacyProfileRequired as error:
        flash(error.detail, "error")
        return redirect(url_for("pages_admin.org_settings", org=org), 303)
    flash("The external user leave setting is saved.", "success")
    return redirect(url_for("pages_admin.org_settings", org=org), 303)


@bp.get("/<org>/deleted-users")
@auth.requires_sign_in
def deleted_users(org: str) -> str:
    cursor = request.args.get("cursor") or None
    with unit_of_work() as uow:
        organization = reading.get_organization(uow, clock(), auth.principal(), org)
        page = reading.list_deleted_users(
            uow, clock(), auth.principal(), org, cursor=cursor, limit=PAGE_SIZE
        )
    return render_template(
        "pages/deleted_users.html",
        org=organization,
        page=page,
        retention_period=settings().retention_period,
        removal_window=settings().removal_window,
    )


@bp.post("/<org>/deleted-users/<membership_id>/restore")
@auth.requires_sign_in
def restore(org: str, membership_id: str) -> Response:
    with unit_of_work() as uow:
        restored = admin.restore(uow, clock(), auth.principal(), org, membership_id)
    flash(
        f"{restored.display_name or restored.email} is restored with "
        f"{len(restored.grants)} group and role assignment(s).",
        "success",
    )
    return redirect(url_for("pages_admin.deleted_users", org=org), 303)


# A refused row in people's words; other refusals keep their own sentence.
ROW_REFUSALS = {
    "transition-not-allowed": "not possible in its state now: it changed since this page "
    "was shown (someone restored, removed or deleted it meanwhile)",
    "not-found": "not found in this organization",
    "conflict": "changed by someone else at the same moment: reload and try again",
    "precondition-failed": "changed by someone else meanwhile: reload and try again",
    "home-organization": "a member of their home organization, who can't be removed here",
}


def _flash_results(outcomes: list[selection.SelectionOutcome], done: str) -> None:
    """One message with a line per selected row: what happened to it, or why not."""
    rows: list[dict[str, Any]] = []
    for outcome in outcomes:
        name = outcome.label or (
            outcome.membership.display_name or outcome.membership.email
            if outcome.membership
            else None
        )
        name = name or "A member no longer in this list"
        if outcome.error is None:
            rows.append({"name": name, "ok": True, "text": done})
        else:
            text = ROW_REFUSALS.get(outcome.error.code, outcome.error.detail)
            rows.append({"name": name, "ok": False, "text": text[0].upper() + text[1:]})
    succeeded = sum(1 for row in rows if row["ok"])
    results: Any = {
        "summary": f"{succeeded} of {len(rows)} selected {done.lower()}.",
        "rows": rows,
        "failed": len(rows) - succeeded,
    }
    flash(results, "results")


def _confirm_selection(org: str, selected: list[str], template: str, listing: str) -> str:
    """The confirmation step used without scripts: who is selected, and what happens."""
    with unit_of_work() as uow:
        organization = reading.get_organization(uow, clock(), auth.principal(), org)
        if listing == "deleted":
            page = reading.list_deleted_users(
                uow, clock(), auth.principal(), org, limit=reading.MAX_PAGE
            )
        else:
            page = reading.list_memberships(
                uow, clock(), auth.principal(), org, limit=reading.MAX_PAGE
            )
    wanted = set(selected)
    chosen = [m for m in page.items if m.id in wanted]
    return render_template(template, org=organization, chosen=chosen, selected=selected)


def _selected() -> list[str] | None:
    return request.form.getlist("membership_id")[: selection.MAX_SELECTION + 1] or None


@bp.post("/<org>/deleted-users/delete-permanently")
@auth.requires_sign_in
def delete_permanently(org: str) -> Response | str:
    """Without ``confirmed=yes`` (no scripts, so no dialog) show the confirmation page."""
    selected = _selected()
    if not selected:
        flash("Select at least one deleted user to delete permanently.", "error")
        return redirect(url_for("pages_admin.deleted_users", org=org), 303)
    if request.form.get("confirmed") != "yes":
        return _confirm_selection(org, selected, "pages/confirm_delete.html", "deleted")
    with unit_of_work() as uow:
        outcomes = selection.decide_selected(uow, clock(), auth.principal(), org, selected, "purge")
    _flash_results(outcomes, "Permanently deleted; removal of their data has started")
    return redirect(url_for("pages_admin.deleted_users", org=org), 303)


@bp.post("/<org>/deleted-users/restore")
@auth.requires_sign_in
def restore_selected(org: str) -> Response:
    """Restore every ticked deleted user (restoring is undone by removing again)."""
    selected = _selected()
    if not selected:
        flash("Select at least one deleted user to restore.", "error")
        return redirect(url_for("pages_admin.deleted_users", org=org), 303)
    with unit_of_work() as uow:
        outcomes = selection.decide_selected(
            uow, clock(), auth.principal(), org, selected, "restore"
        )
    _flash_results(outcomes, "Restored with their groups and roles")
    return redirect(url_for("pages_admin.deleted_users", org=org), 303)


@bp.post("/<org>/memberships/remove")
@auth.requires_sign_in
def remove_selected(org: str) -> Response | str:
    """Remove every ticked guest; without ``confirmed=yes`` show the confirmation page."""
    selected = _selected()
    if not selected:
        flash("Select at least one guest to remove.", "error")
        return redirect(url_for("pages_admin.memberships", org=org), 303)
    if request.form.get("confirmed") != "yes":
        return _confirm_selection(org, selected, "pages/confirm_remove_selected.html", "members")
    with unit_of_work() as uow:
        outcomes = selection.decide_selected(
            uow, clock(), auth.principal(), org, selected, "remove"
        )
    _flash_results(outcomes, "Removed")
    return redirect(url_for("pages_admin.memberships", org=org), 303)


@bp.get("/<org>/memberships")
@auth.requires_sign_in
def memberships(org: str) -> str:
    state = request.args.get("state") or None
    cursor = request.args.get("cursor") or None
    with unit_of_work() as uow:
        organization = reading.get_organization(uow, clock(), auth.principal(), org)
        page = reading.list_memberships(
            uow, clock(), auth.principal(), org, state=state, cursor=cursor, limit=PAGE_SIZE
        )
    return render_template("pages/memberships.html", org=organization, page=page, state=state)


@bp.get("/<org>/memberships/<membership_id>")
@auth.requires_sign_in
def membership(org: str, membership_id: str) -> str:
    with unit_of_work() as uow:
        details = timeline.membership_details(uow, clock(), auth.principal(), org, membership_id)
    return render_template(
        "pages/membership.html",
        details=details,
        diagram=lifecycle_diagram(details.membership.state),
        now=clock()(),
    )


@bp.post("/<org>/memberships/<membership_id>/remove")
@auth.requires_sign_in
def remove(org: str, membership_id: str) -> Response | str:
    """Without ``confirmed=yes`` show the confirmation page; then remove the guest."""
    if request.form.get("confirmed") != "yes":
        with unit_of_work() as uow:
            details = timeline.membership_details(
                uow, clock(), auth.principal(), org, membership_id
            )
        return render_template("pages/confirm_remove.html", details=details)
    with unit_of_work() as uow:
        removed = admin.remove(uow, clock(), auth.principal(), org, membership_id)
    what = (
        "removed and moved to Deleted users, where you can restore them"
        if removed.state == "soft-deleted"
        else "removed, and removal of their data has started"
    )
    flash(f"{removed.display_name or removed.email} is {what}.", "success")
    return redirect(url_for("pages_admin.membership", org=org, membership_id=membership_id), 303)
