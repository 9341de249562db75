"""The JSON shapes of webhook deliveries and of connected apps' removal confirmations."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from memberships.views import Page
from memberships.webhook_deliveries import DeliveryView
from web.schemas import Input, Output

DeliveryStateName = Literal["pending", "delivered", "failed"]


class WebhookDelivery(Output):
    """One event sent to one endpoint. ``nextAttemptAt``: when a pending one is tried
    again (null once delivered or failed)."""

    id: str
    webhook_id: str
    event_id: str = Field(description="The event's id: the `webhook-id` header of every attempt.")
    event_type: str
    state: DeliveryStateName
    attempts: int
    last_attempt_at: datetime | None
    last_status_code: int | None = Field(description="The HTTP status of the last answer.")
    last_error: str | None = Field(description="Why the last attempt failed.")
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    @classmethod
    def of(cls, d: DeliveryView) -> WebhookDelivery:
        return cls(
            id=d.id,
            webhook_id=d.webhook_id,
            event_id=d.event_id,
            event_type=d.event_type,
            state=d.state,  # type: ignore[arg-type]  # validated against the Literal
            attempts=d.attempts,
            last_attempt_at=d.last_attempt_at,
            last_status_code=d.last_status_code,
            last_error=d.last_error,
            next_attempt_at=d.next_attempt_at,
            delivered_at=d.delivered_at,
            created_at=d.created_at,
        )


class WebhookDeliveryPage(Output):
    items: list[WebhookDelivery]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")

    @classmethod
    def of(cls, page: Page) -> WebhookDeliveryPage:
        return cls(items=[WebhookDelivery.of(d) for d in page.items], next_cursor=page.next_cursor)


class RemovalConfirmationIn(Input):
    webhook_id: str = Field(
        min_length=1, max_length=64, description="The endpoint (app) whose removal is confirmed."
    )
    note: str = Field(
        min_length=1, max_length=500, description="Why it is confirmed by hand (audited)."
    )


class RemovalConfirmed(Output):
    """The confirmation was recorded."""

    webhook_id: str
    confirmed_at: datetime | None
