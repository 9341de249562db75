"""An organization's webhook endpoints: where its apps are told of events.

Admin only, like every organization setting (``admin_organization``: anyone else is
told the organization does not exist). An endpoint's URL must pass the rule against
request forgery (``memberships.webhook_urls.check_webhook_url``) when it is saved.
Its signing secret (``whsec_`` and the base64 of 32 random bytes, the Standard
Webhooks format) is shown once, in the answer that makes it (creation, rotation);
no other view carries it. After a rotation the previous secret keeps signing
alongside the new one for ``PREVIOUS_SECRET_LIFETIME``. Every change is audited
(``reason`` names the endpoint; never a secret or the URL).
"""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from memberships.clock import Clock
from memberships.decisions import admin_organization, audit
from memberships.errors import InvalidInput, NotFound
from memberships.principal import Principal
from memberships.reading import page_of
from memberships.views import Page
from memberships.webhook_urls import check_webhook_url
from store.models import Organization, WebhookEndpoint
from store.outbox import EVENT_TYPES
from store.unit_of_work import UnitOfWork

PREVIOUS_SECRET_LIFETIME = timedelta(hours=24)
SECRET_BYTES = 32
MAX_DESCRIPTION_LENGTH = 500
DISABLED_BY_ADMIN = "Disabled by an admin."
CHANGEABLE = ("url", "events", "description", "confirms_removal", "enabled")


@dataclass(frozen=True, slots=True)
class WebhookEndpointView:
    id: str
    organization_id: str
    url: str
    description: str | None
    events: tuple[str, ...] | None
    """The event types sent there; ``None``: every type."""
    confirms_removal: bool
    enabled: bool
    disabled_reason: str | None
    failing_since: datetime | None
    created_at: datetime
    updated_at: datetime
    secret: str | None = None
    """Only in the answer that made it (creation, rotation)."""

    @classmethod
    def of(cls, endpoint: WebhookEndpoint, *, secret: str | None = None) -> WebhookEndpointView:
        return cls(
            id=endpoint.id,
            organization_id=endpoint.organization_id,
            url=endpoint.url,
            description=endpoint.description,
            events=tuple(json.loads(endpoint.events)) if endpoint.events is not None else None,
            confirms_removal=endpoint.confirms_removal,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            failing_since=endpoint.failing_since,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
            secret=secret,
        )


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes: what the Standard Webhooks libraries read."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _field_error(field: str, message: str, **extra: Any) -> InvalidInput:
    return InvalidInput(
        message,
        field=field,
        errors=[{"location": "json", "field": field, "message": message}],
        **extra,
    )


def _checked_url(url: str, allow_private_networks: bool) -> str:
    try:
        return check_webhook_url(url, allow_private_networks=allow_private_networks).url
    except InvalidInput as refused:
        raise _field_error("url", refused.detail, reason=refused.extra.get("reason")) from None


def _checked_events(events: Sequence[str] | None) -> str | None:
    """The stored JSON list (``None``: every type); unknown types refused, naming them."""
    if events is None:
        return None
    wanted = list(dict.fromkeys(str(e).strip() for e in events))
    if not wanted:
        raise _field_error(
            "events", "events: give at least one event type, or leave events out for every type."
        )
    unknown = [e for e in wanted if e not in EVENT_TYPES]
    if unknown:
        raise _field_error(
            "events",
            f"events: unknown event type{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}.",
            unknown=unknown,
        )
    return json.dumps(wanted)


def _checked_description(description: str | None) -> str | None:
    if description is None:
        return None
    description = description.strip()
    if len(description) > MAX_DESCRIPTION_LENGTH:
        raise _field_error(
            "description", f"description: at most {MAX_DESCRIPTION_LENGTH} characters."
        )
    return description or None


def create_webhook(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    url: str,
    *,
    events: Sequence[str] | None = None,
    description: str | None = None,
    confirms_removal: bool = False,
    allow_private_networks: bool = False,
) -> WebhookEndpointView:
    """A new endpoint, enabled; its view carries the secret (shown this once).

    Raises ``InvalidInput`` (the URL, an unknown event type, the description) or
    ``NotFound`` (no such organization, or not its admin)."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "create_webhook")
    endpoint = WebhookEndpoint(
        organization_id=org.id,
        url=_checked_url(url, allow_private_networks),
        events=_checked_events(events),
        description=_checked_description(description),
        confirms_removal=bool(confirms_removal),
        secret=new_secret(),
        enabled=True,
        created_at=now,
        updated_at=now,
    )
    uow.webhooks.add(endpoint)
    audit(uow, now, principal, "create_webhook", organization_id=org.id, reason=endpoint.id)
    uow.commit()
    return WebhookEndpointView.of(endpoint, secret=endpoint.secret)


def list_webhooks(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    *,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """The organization's endpoints, oldest first (by id), cursor-paginated."""
    org = admin_organization(uow, clock(), principal, org_ref, "list_webhooks")

    def rows_after(after: str | None, n: int) -> Sequence[WebhookEndpoint]:
        return uow.webhooks.page_of_organization(org.id, after, n)

    return page_of(cursor, limit, rows_after, WebhookEndpointView.of)


def get_webhook(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, webhook_id: str
) -> WebhookEndpointView:
    org = admin_organization(uow, clock(), principal, org_ref, "read_webhook")
    return WebhookEndpointView.of(endpoint_in(uow, org, webhook_id))


def endpoint_in(uow: UnitOfWork, org: Organization, webhook_id: str) -> WebhookEndpoint:
    """The organization's endpoint ``webhook_id``; ``NotFound`` for another's or none."""
    endpoint = uow.webhooks.get((webhook_id or "").strip().lower())
    if endpoint is None or endpoint.organization_id != org.id:
        raise NotFound(f"No webhook endpoint {webhook_id!r} in {org.domain}.")
    return endpoint


def update_webhook(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    webhook_id: str,
    changes: Mapping[str, Any],
    *,
    allow_private_networks: bool = False,
) -> WebhookEndpointView:
    """Change what ``changes`` names (``url``, ``events``, ``description``,
    ``confirms_removal``, ``enabled``); the rest stays. Disabling records that an admin
    did it; enabling clears why it was disabled and the run of failures."""
    unknown = set(changes) - set(CHANGEABLE)
    if unknown:
        raise ValueError(f"not changeable: {', '.join(sorted(unknown))}")
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "update_webhook")
    endpoint = endpoint_in(uow, org, webhook_id)
    if "url" in changes:
        endpoint.url = _checked_url(changes["url"], allow_private_networks)
    if "events" in changes:
        endpoint.events = _checked_events(changes["events"])
    if "description" in changes:
        endpoint.description = _checked_description(changes["description"])
    if "confirms_removal" in changes:
        endpoint.confirms_removal = bool(changes["confirms_removal"])
    if "enabled" in changes:
        enabled = bool(changes["enabled"])
        if enabled and not endpoint.enabled:
            endpoint.disabled_reason = None
            endpoint.failing_since = None
        elif not enabled and endpoint.enabled:
            endpoint.disabled_reason = DISABLED_BY_ADMIN
        endpoint.enabled = enabled
    endpoint.updated_at = now
    audit(uow, now, principal, "update_webhook", organization_id=org.id, reason=endpoint.id)
    uow.commit()
    return WebhookEndpointView.of(endpoint)


def delete_webhook(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, webhook_id: str
) -> WebhookEndpointView:
    """Delete the endpoint (its deliveries go with it); the view of what was deleted."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "delete_webhook")
    endpoint = endpoint_in(uow, org, webhook_id)
    view = WebhookEndpointView.of(endpoint)
    uow.webhooks.delete(endpoint)
    audit(uow, now, principal, "delete_webhook", organization_id=org.id, reason=view.id)
    uow.commit()
    return view


def rotate_webhook_secret(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, webhook_id: str
) -> WebhookEndpointView:
    """A new secret (in the view, shown this once); the old one keeps signing alongside
    it for ``PREVIOUS_SECRET_LIFETIME``."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "rotate_webhook_secret")
    endpoint = endpoint_in(uow, org, webhook_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = now + PREVIOUS_SECRET_LIFETIME
    endpoint.secret = new_secret()
    endpoint.updated_at = now
    audit(uow, now, principal, "rotate_webhook_secret", organization_id=org.id, reason=endpoint.id)
    uow.commit()
    return WebhookEndpointView.of(endpoint, secret=endpoint.secret)
