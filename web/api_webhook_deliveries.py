"""Webhook deliveries and connected apps' removal confirmations over HTTP.

An organization's admin lists an endpoint's deliveries and sends one again now; records
by hand that an app removed a membership's data. An app calls its ``confirmUrl``
(``POST /v1/removal-confirmations/{token}``, no credentials: the token is the
capability).
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import g

from memberships import removal_confirmations, webhook_deliveries
from web.delivery_schemas import (
    RemovalConfirmationIn,
    RemovalConfirmed,
    WebhookDelivery,
    WebhookDeliveryPage,
)
from web.openapi import PUBLIC_V1_PATHS, problems
from web.schemas import AppConfirmation, PageQuery, no_body
from web.services import principal, services
from web.v1 import PREFIX, blueprint

bp = blueprint("webhook_deliveries", __name__, tag="Organization admin")
public = APIBlueprint("removal_confirmations", __name__, url_prefix=PREFIX, tag="Operations")

ORG = "`{org}` is the organization's id (a GUID) or its domain name."
CONFIRM_RULE = "/removal-confirmations/<token>"
PUBLIC_V1_PATHS.add(f"{PREFIX}/removal-confirmations/{{token}}")


@bp.get("/organizations/<org>/webhooks/<webhook_id>/deliveries")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(WebhookDeliveryPage)
@bp.doc(
    operation_id="listWebhookDeliveries",
    summary="List a webhook's deliveries",
    description="Each event sent to the endpoint: its id and type, the attempts, the last "
    "status code and error, the next attempt, and the state (`pending`, `delivered`, "
    f"`failed`); cursor-paginated. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def list_deliveries(org: str, webhook_id: str, query: PageQuery) -> WebhookDeliveryPage:
    s = services()
    with s.uow() as uow:
        page = webhook_deliveries.list_deliveries(
            uow, s.clock, principal(), org, webhook_id, cursor=query.cursor, limit=query.limit
        )
    return WebhookDeliveryPage.of(page)


@bp.post("/organizations/<org>/webhooks/<webhook_id>/deliveries/<delivery_id>/retry")
@no_body(bp)
@bp.output(WebhookDelivery, status_code=202, description="Accepted: it is sent again now.")
@bp.doc(
    operation_id="retryWebhookDelivery",
    summary="Send a delivery again now",
    description="A `pending` or `failed` delivery is attempted again at once (same "
    "`webhook-id`), and retried with back-off from there; a `delivered` one is `422`. "
    f"{ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def retry_delivery(org: str, webhook_id: str, delivery_id: str) -> tuple[WebhookDelivery, int]:
    s = services()
    with s.uow() as uow:
        view = webhook_deliveries.retry_delivery(
            uow, s.clock, principal(), org, webhook_id, delivery_id
        )
    return WebhookDelivery.of(view), 202


@bp.post("/organizations/<org>/memberships/<membership_id>/removal-confirmations")
@bp.input(RemovalConfirmationIn, arg_name="body")
@bp.output(AppConfirmation, status_code=201, description="The app's confirmation, recorded.")
@bp.doc(
    operation_id="addRemovalConfirmation",
    summary="Confirm an app's data removal by hand",
    description="Records that a connected app (an endpoint with `confirmsRemoval`) removed "
    "the membership's data, with a note saying why it is recorded by hand; audited with "
    "who and why. Once the service's own data is removed and every app confirmed, the "
    f"membership is purged. An app that confirmed already is `409 already-exists`. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input", "already-exists"),
)
def add_removal_confirmation(
    org: str, membership_id: str, body: RemovalConfirmationIn
) -> tuple[AppConfirmation, int]:
    s = services()
    with s.uow() as uow:
        view = removal_confirmations.confirm_manually(
            uow, s.clock, principal(), org, membership_id, body.webhook_id, body.note
        )
    g.membership_id = membership_id
    return AppConfirmation.of(view), 201


@public.post(CONFIRM_RULE)
@no_body(public)
@public.output(RemovalConfirmed, description="Confirmed.")
@public.doc(
    operation_id="confirmAppRemoval",
    summary="An app confirms a data removal (its confirmUrl)",
    description="The `confirmUrl` a `membership.purge_pending` delivery carries to an "
    "endpoint with `confirmsRemoval`: `POST` it with an empty body and no credentials once "
    "the app removed the person's data. It works once; an unknown, used or replaced link "
    "is `404 not-found`.",
    responses=problems("not-found"),
)
def confirm_app_removal(token: str) -> RemovalConfirmed:
    s = services()
    with s.uow() as uow:
        view = removal_confirmations.confirm_by_token(uow, s.clock, token)
    return RemovalConfirmed(webhook_id=view.webhook_id, confirmed_at=view.confirmed_at)
