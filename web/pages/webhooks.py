"""An organization admin's Webhooks page: the endpoints with their state, add one (its
secret shown once), disable or enable, rotate the secret (the new one shown once),
delete (after a confirmation).

A secret is rendered in the answer to the POST that made it, never stored in the
session cookie or shown again; that answer is not cached (``Cache-Control: no-store``).
Other POSTs answer with a redirect. A URL or event list the rules refuse comes back
on the same page, next to its field, with what was typed.
"""

from __future__ import annotations

from typing import Any

from flask import flash, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from memberships import reading
from memberships import webhook_endpoints as endpoints
from memberships.errors import InvalidInput
from store.outbox import EVENT_TYPES
from web.pages import page_blueprint
from web.pages import session as auth
from web.pages.context import clock, settings, unit_of_work

bp = page_blueprint("pages_webhooks", __name__, url_prefix="/admin")

MAX_LISTED = 200


def _listing(org: str, entered: dict[str, Any] | None = None, status: int = 200) -> Any:
    with unit_of_work() as uow:
        organization = reading.get_organization(uow, clock(), auth.principal(), org)
        page = endpoints.list_webhooks(uow, clock(), auth.principal(), org, limit=MAX_LISTED)
    body = render_template(
        "pages/webhooks.html",
        org=organization,
        endpoints=page.items,
        event_types=EVENT_TYPES,
        entered=entered or {},
    )
    return body if status == 200 else (body, status)


@bp.get("/<org>/webhooks")
@auth.requires_sign_in
def index(org: str) -> Any:
    return _listing(org)


def _secret_page(org: str, view: endpoints.WebhookEndpointView, rotated: bool) -> Response:
    with unit_of_work() as uow:
        organization = reading.get_organization(uow, clock(), auth.principal(), org)
    response = make_response(
        render_template(
            "pages/webhook_secret.html", org=organization, endpoint=view, rotated=rotated
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<org>/webhooks")
@auth.requires_sign_in
def create(org: str) -> Any:
    url = request.form.get("url", "")
    description = request.form.get("description", "")
    chosen = request.form.getlist("events")
    every = request.form.get("scope", "all") == "all"
    confirms = request.form.get("confirms_removal") == "yes"
    try:
        with unit_of_work() as uow:
            view = endpoints.create_webhook(
                uow,
                clock(),
                auth.principal(),
                org,
                url,
                events=None if every else chosen,
                description=description or None,
                confirms_removal=confirms,
                allow_private_networks=settings().webhook_allow_private_networks,
            )
    except InvalidInput as error:
        field_errors = {e["field"]: e["message"] for e in error.extra.get("errors", [])}
        entered = {
            "errors": field_errors or {"url": error.detail},
            "url": url,
            "description": description,
            "events": chosen,
            "scope": "all" if every else "some",
            "confirms_removal": confirms,
        }
        return _listing(org, entered, 422)
    return _secret_page(org, view, rotated=False)


@bp.post("/<org>/webhooks/<webhook_id>/rotate-secret")
@auth.requires_sign_in
def rotate(org: str, webhook_id: str) -> Response:
    with unit_of_work() as uow:
        view = endpoints.rotate_webhook_secret(uow, clock(), auth.principal(), org, webhook_id)
    return _secret_page(org, view, rotated=True)


@bp.post("/<org>/webhooks/<webhook_id>/enabled")
@auth.requires_sign_in
def set_enabled(org: str, webhook_id: str) -> Response:
    choice = request.form.get("enabled")
    if choice not in ("yes", "no"):
        flash("Choose whether the endpoint is enabled.", "error")
        return redirect(url_for("pages_webhooks.index", org=org), 303)
    with unit_of_work() as uow:
        view = endpoints.update_webhook(
            uow, clock(), auth.principal(), org, webhook_id, {"enabled": choice == "yes"}
        )
    flash(f"{view.url} is {'enabled' if view.enabled else 'disabled'}.", "success")
    return redirect(url_for("pages_webhooks.index", org=org), 303)


@bp.post("/<org>/webhooks/<webhook_id>/delete")
@auth.requires_sign_in
def delete(org: str, webhook_id: str) -> Any:
    """Without ``confirmed=yes`` (no scripts, so no dialog) show the confirmation page."""
    if request.form.get("confirmed") != "yes":
        with unit_of_work() as uow:
            organization = reading.get_organization(uow, clock(), auth.principal(), org)
            view = endpoints.get_webhook(uow, clock(), auth.principal(), org, webhook_id)
        return render_template("pages/confirm_delete_webhook.html", org=organization, endpoint=view)
    with unit_of_work() as uow:
        view = endpoints.delete_webhook(uow, clock(), auth.principal(), org, webhook_id)
    flash(f"The endpoint {view.url} is deleted: nothing more is sent there.", "success")
    return redirect(url_for("pages_webhooks.index", org=org), 303)
