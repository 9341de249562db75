"""The JSON shapes of an organization's webhook endpoints (``/v1/organizations/{org}/webhooks``).

The signing secret appears only in ``WebhookEndpointWithSecret``: the answer of the
creation and of a rotation."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, StrictBool

from memberships.views import Page
from memberships.webhook_endpoints import MAX_DESCRIPTION_LENGTH, WebhookEndpointView
from memberships.webhook_urls import MAX_WEBHOOK_URL_LENGTH
from web.schemas import Input, Output

EVENTS_DESCRIPTION = (
    "The event types sent to this endpoint (see docs/webhooks.md); absent or null: every type."
)


class WebhookEndpointIn(Input):
    url: str = Field(
        max_length=MAX_WEBHOOK_URL_LENGTH,
        description="Where events are sent: an `https://` URL whose host resolves to public "
        "addresses only.",
    )
    events: list[str] | None = Field(default=None, max_length=50, description=EVENTS_DESCRIPTION)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    confirms_removal: StrictBool = Field(
        default=False,
        description="The app holds guests' data and must confirm each removal before a "
        "membership is purged.",
    )


class WebhookEndpointPatch(Input):
    """Only the fields given change; `description` and `events` may be set to null."""

    url: str | None = Field(default=None, max_length=MAX_WEBHOOK_URL_LENGTH)
    events: list[str] | None = Field(default=None, max_length=50, description=EVENTS_DESCRIPTION)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH)
    confirms_removal: StrictBool | None = None
    enabled: StrictBool | None = Field(
        default=None,
        description="false: nothing is sent there; true again clears `disabledReason` and "
        "`failingSince`.",
    )


class WebhookEndpoint(Output):
    """An endpoint as its organization's admins see it; never its secret."""

    id: str
    organization_id: str
    url: str
    description: str | None
    events: list[str] | None = Field(description=EVENTS_DESCRIPTION)
    confirms_removal: bool
    enabled: bool
    disabled_reason: str | None = Field(description="Why it is disabled; null while enabled.")
    failing_since: datetime | None = Field(
        description="The first failed delivery of the current run of failures; null: none."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def fields_of(cls, view: WebhookEndpointView) -> dict[str, object]:
        return {
            "id": view.id,
            "organization_id": view.organization_id,
            "url": view.url,
            "description": view.description,
            "events": list(view.events) if view.events is not None else None,
            "confirms_removal": view.confirms_removal,
            "enabled": view.enabled,
            "disabled_reason": view.disabled_reason,
            "failing_since": view.failing_since,
            "created_at": view.created_at,
            "updated_at": view.updated_at,
        }

    @classmethod
    def of(cls, view: WebhookEndpointView) -> WebhookEndpoint:
        return cls(**cls.fields_of(view))  # type: ignore[arg-type]


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str = Field(
        description="`whsec_` and base64: the key that signs deliveries. Shown only in this "
        "answer: keep it now."
    )

    @classmethod
    def of(cls, view: WebhookEndpointView) -> WebhookEndpointWithSecret:
        assert view.secret is not None
        return cls(**cls.fields_of(view), secret=view.secret)  # type: ignore[arg-type]


class WebhookEndpointPage(Output):
    items: list[WebhookEndpoint]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null: last.")

    @classmethod
    def of(cls, page: Page) -> WebhookEndpointPage:
        return cls(items=[WebhookEndpoint.of(v) for v in page.items], next_cursor=page.next_cursor)
