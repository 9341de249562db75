"""An organization admin's page of one webhook endpoint: its recent deliveries with their
state, attempts and last error, and a Retry button; and the manual confirmation of a
connected app's data removal from the membership's record."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from memberships import reading, removal_confirmations, webhook_deliveries
from memberships.errors import AlreadyExists, InvalidInput
from web.pages import page_blueprint
from web.pages import session as auth
from web.pages.context import clock, unit_of_work

bp = page_blueprint("pages_webhook_deliveries", __name__, url_prefix="/admin")


@bp.get("/<org>/webhooks/<webhook_id>")
@auth.requires_sign_in
def webhook(org: str, webhook_id: str) -> str:
    with unit_of_work() as uow:
        organization = reading.get_organization(uow, clock(), auth.principal(), org)
        endpoint, deliveries = webhook_deliveries.recent_deliveries(
            uow, clock(), auth.principal(), org, webhook_id
        )
        found = {
            "id": endpoint.id,
            "url": endpoint.url,
            "description": endpoint.description,
            "enabled": endpoint.enabled,
            "disabled_reason": endpoint.disabled_reason,
            "failing_since": endpoint.failing_since,
            "confirms_removal": endpoint.confirms_removal,
        }
    return render_template(
        "pages/webhook.html", org=organization, endpoint=found, deliveries=deliveries
    )


@bp.post("/<org>/webhooks/<webhook_id>/deliveries/<delivery_id>/retry")
@auth.requires_sign_in
def retry(org: str, webhook_id: str, delivery_id: str) -> Response:
    try:
        with unit_of_work() as uow:
            view = webhook_deliveries.retry_delivery(
                uow, clock(), auth.principal(), org, webhook_id, delivery_id
            )
        flash(f"The {view.event_type} event is being sent again now.", "success")
    except InvalidInput as refused:
        flash(refused.detail, "error")
    return redirect(url_for(".webhook", org=org, webhook_id=webhook_id), 303)


@bp.post("/<org>/memberships/<membership_id>/removal-confirmations")
@auth.requires_sign_in
def confirm_removal(org: str, membership_id: str) -> Response:
    try:
        with unit_of_work() as uow:
            removal_confirmations.confirm_manually(
                uow,
                clock(),
                auth.principal(),
                org,
                membership_id,
                request.form.get("webhook_id", ""),
                request.form.get("note", ""),
            )
        flash("The app's removal is confirmed, with your note in the audit log.", "success")
    except (InvalidInput, AlreadyExists) as refused:
        flash(refused.detail, "error")
    return redirect(url_for("pages_admin.membership", org=org, membership_id=membership_id), 303)
