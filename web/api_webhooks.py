"""An organization's webhook endpoints (admin only): add, list, read, change, delete, and
rotate the signing secret. The secret is in the answer of the creation and of a
rotation only. Every URL is checked against request forgery when saved
(``WEBHOOK_ALLOW_PRIVATE_NETWORKS`` lifts that for development)."""

from __future__ import annotations

from typing import Any

from memberships import webhook_endpoints as endpoints
from web.errors import ProblemError
from web.openapi import problems
from web.schemas import PageQuery, no_body
from web.services import principal, services
from web.v1 import blueprint
from web.webhook_schemas import (
    WebhookEndpoint,
    WebhookEndpointIn,
    WebhookEndpointPage,
    WebhookEndpointPatch,
    WebhookEndpointWithSecret,
)

bp = blueprint("webhooks", __name__, tag="Organization admin")

ORG = "`{org}` is the organization's id (a GUID) or its domain name."
URL_RULE = (
    "The URL must be `https://` and its host must resolve only to public addresses (no "
    "loopback, private, link-local or multicast ones); otherwise `422 invalid-input` "
    "naming `url`."
)


def _allow_private_networks() -> bool:
    return services().settings.webhook_allow_private_networks


@bp.post("/organizations/<org>/webhooks")
@bp.input(WebhookEndpointIn, arg_name="body")
@bp.output(WebhookEndpointWithSecret, status_code=201, description="The endpoint and its secret.")
@bp.doc(
    operation_id="createWebhook",
    summary="Add a webhook endpoint",
    description="Events of the organization are sent there, signed with the endpoint's "
    "secret (`whsec_…`), which this answer alone shows. `events` limits the types sent "
    "(unknown types are `422 invalid-input` naming them). "
    f"{URL_RULE} {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def create_webhook(org: str, body: WebhookEndpointIn) -> tuple[WebhookEndpointWithSecret, int]:
    s = services()
    with s.uow() as uow:
        view = endpoints.create_webhook(
            uow,
            s.clock,
            principal(),
            org,
            body.url,
            events=body.events,
            description=body.description,
            confirms_removal=body.confirms_removal,
            allow_private_networks=_allow_private_networks(),
        )
    return WebhookEndpointWithSecret.of(view), 201


@bp.get("/organizations/<org>/webhooks")
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(WebhookEndpointPage)
@bp.doc(
    operation_id="listWebhooks",
    summary="List webhook endpoints",
    description=f"The organization's endpoints, enabled or not, cursor-paginated. {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def list_webhooks(org: str, query: PageQuery) -> WebhookEndpointPage:
    s = services()
    with s.uow() as uow:
        page = endpoints.list_webhooks(
            uow, s.clock, principal(), org, cursor=query.cursor, limit=query.limit
        )
    return WebhookEndpointPage.of(page)


@bp.get("/organizations/<org>/webhooks/<webhook_id>")
@bp.output(WebhookEndpoint)
@bp.doc(
    operation_id="getWebhook",
    summary="Show a webhook endpoint",
    description=f"Its state: `enabled`, and why not (`disabledReason`). {ORG}",
    responses=problems("not-found", "forbidden"),
)
def get_webhook(org: str, webhook_id: str) -> WebhookEndpoint:
    s = services()
    with s.uow() as uow:
        return WebhookEndpoint.of(endpoints.get_webhook(uow, s.clock, principal(), org, webhook_id))


_NOT_NULL = ("url", "confirms_removal", "enabled")


@bp.patch("/organizations/<org>/webhooks/<webhook_id>")
@bp.input(WebhookEndpointPatch, arg_name="body")
@bp.output(WebhookEndpoint)
@bp.doc(
    operation_id="updateWebhook",
    summary="Change a webhook endpoint",
    description="Only the fields given change. `enabled: false` stops sending to it; "
    f"`enabled: true` starts again and clears why it was disabled. {URL_RULE} {ORG}",
    responses=problems("not-found", "forbidden", "invalid-input"),
)
def update_webhook(org: str, webhook_id: str, body: WebhookEndpointPatch) -> WebhookEndpoint:
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    nulls = [name for name in _NOT_NULL if name in changes and changes[name] is None]
    if nulls:
        fields = [WebhookEndpointPatch.model_fields[n].alias or n for n in nulls]
        raise ProblemError(
            "invalid-input",
            f"{', '.join(fields)} cannot be null: leave a field out to keep it.",
            errors=[
                {"location": "json", "field": f, "message": "Input should not be null"}
                for f in fields
            ],
        )
    s = services()
    with s.uow() as uow:
        view = endpoints.update_webhook(
            uow,
            s.clock,
            principal(),
            org,
            webhook_id,
            changes,
            allow_private_networks=_allow_private_networks(),
        )
    return WebhookEndpoint.of(view)


@bp.delete("/organizations/<org>/webhooks/<webhook_id>")
@no_body(bp)
@bp.output(WebhookEndpoint, description="The endpoint deleted.")
@bp.doc(
    operation_id="deleteWebhook",
    summary="Delete a webhook endpoint",
    description=f"Nothing more is sent there; its delivery records go with it. {ORG}",
    responses=problems("not-found", "forbidden"),
)
def delete_webhook(org: str, webhook_id: str) -> WebhookEndpoint:
    s = services()
    with s.uow() as uow:
        view = endpoints.delete_webhook(uow, s.clock, principal(), org, webhook_id)
    return WebhookEndpoint.of(view)


@bp.post("/organizations/<org>/webhooks/<webhook_id>/rotate-secret")
@no_body(bp)
@bp.output(WebhookEndpointWithSecret, description="The endpoint and its new secret.")
@bp.doc(
    operation_id="rotateWebhookSecret",
    summary="Rotate a webhook endpoint's secret",
    description="A new secret, shown only in this answer. For 24 hours deliveries carry "
    "a signature with the previous secret too, so the app can switch without missing "
    f"one. {ORG}",
    responses=problems("not-found", "forbidden"),
)
def rotate_webhook_secret(org: str, webhook_id: str) -> WebhookEndpointWithSecret:
    s = services()
    with s.uow() as uow:
        view = endpoints.rotate_webhook_secret(uow, s.clock, principal(), org, webhook_id)
    return WebhookEndpointWithSecret.of(view)
