"""An organization admin's view of an endpoint's deliveries, and sending one again now."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from memberships.clock import Clock
from memberships.decisions import admin_organization, audit
from memberships.errors import InvalidInput, NotFound
from memberships.principal import Principal
from memberships.reading import page_of
from memberships.views import Page
from memberships.webhook_delivery import DELIVER_ACTOR
from store.models import Event, Organization, WebhookDelivery, WebhookEndpoint
from store.unit_of_work import UnitOfWork

RECENT = 50


@dataclass(frozen=True, slots=True)
class DeliveryView:
    id: str
    webhook_id: str
    event_id: str
    event_type: str
    state: str
    attempts: int
    last_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime


def _view(delivery: WebhookDelivery, event: Event) -> DeliveryView:
    return DeliveryView(
        id=delivery.id,
        webhook_id=delivery.endpoint_id,
        event_id=event.event_id,
        event_type=event.type,
        state=delivery.state,
        attempts=delivery.attempts,
        last_attempt_at=delivery.last_attempt_at,
        last_status_code=delivery.last_status_code,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at if delivery.state == "pending" else None,
        delivered_at=delivery.delivered_at,
        created_at=delivery.created_at,
    )


def _endpoint_in(uow: UnitOfWork, org: Organization, webhook_id: str) -> WebhookEndpoint:
    endpoint = uow.webhooks.get((webhook_id or "").strip().lower())
    if endpoint is None or endpoint.organization_id != org.id:
        raise NotFound(f"No webhook {webhook_id!r} in {org.domain}.")
    return endpoint


def list_deliveries(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    webhook_id: str,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """The endpoint's deliveries, cursor-paginated (in id order, like every list)."""
    org = admin_organization(uow, clock(), principal, org_ref, "list_webhook_deliveries")
    endpoint = _endpoint_in(uow, org, webhook_id)
    events: dict[int, Event] = {}

    def rows_after(after: str | None, n: int) -> Sequence[WebhookDelivery]:
        return uow.deliveries.page_of_endpoint(endpoint.id, after, n)

    def view(delivery: WebhookDelivery) -> DeliveryView:
        event = events.get(delivery.event_id) or uow.deliveries.event_of(delivery)
        assert event is not None  # a foreign key
        events[delivery.event_id] = event
        return _view(delivery, event)

    return page_of(cursor, limit, rows_after, view)


def recent_deliveries(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, webhook_id: str
) -> tuple[WebhookEndpoint, list[DeliveryView]]:
    """The endpoint and its latest deliveries, newest first (the admin's page)."""
    org = admin_organization(uow, clock(), principal, org_ref, "list_webhook_deliveries")
    endpoint = _endpoint_in(uow, org, webhook_id)
    rows = uow.deliveries.recent_of_endpoint(endpoint.id, RECENT)
    return endpoint, [_view(d, e) for d, e in rows]


def retry_delivery(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    webhook_id: str | None,
    delivery_id: str,
) -> DeliveryView:
    """A failed or pending delivery sent again now (delivered ones are refused: the app
    has it). Audited. Its retry period starts again from this attempt. Without
    ``webhook_id``, the delivery is looked for among every endpoint of the organization."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "retry_webhook_delivery")
    delivery = uow.deliveries.get((delivery_id or "").strip().lower())
    if delivery is None and webhook_id is None:
        raise NotFound(f"No delivery {delivery_id!r} in {org.domain}.")
    endpoint = _endpoint_in(uow, org, webhook_id or (delivery.endpoint_id if delivery else ""))
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound(f"No delivery {delivery_id!r} of webhook {endpoint.id}.")
    if delivery.state == "delivered":
        raise InvalidInput(
            "This delivery was delivered already; only a pending or failed one is sent again.",
            field="deliveryId",
        )
    if not endpoint.enabled:
        raise InvalidInput(
            "The webhook is disabled: enable it first, then send the delivery again.",
            field="webhookId",
        )
    uow.deliveries.send_again_now(delivery.id, now)
    audit(uow, now, principal, "retry_webhook_delivery", organization_id=org.id, reason=delivery.id)
    uow.send_after_commit(DELIVER_ACTOR, delivery.id)
    uow.commit()
    uow.deliveries.refresh(delivery)
    event = uow.deliveries.event_of(delivery)
    assert event is not None
    return _view(delivery, event)
