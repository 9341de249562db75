"""An endpoint's deliveries in a browser: the list under Webhooks leads to them, a failed
one is sent again with Retry, and the page fits 320 to 1440 px without scrolling
sideways, with no serious accessibility violation (the ``screenshot`` fixture checks)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from memberships.clock import utc_now
from memberships.webhook_delivery import fan_out
from store.models import Event, Organization, WebhookDelivery, WebhookEndpoint

pytestmark = pytest.mark.browser

URL = "https://93.184.215.14/hooks/membership-lifecycle/contoso-file-store-with-a-long-path"


def test_an_admin_sees_a_webhooks_deliveries_and_retries_a_failed_one(
    page, live_server, screenshot
):
    # Events earlier tests left on the shared server go out before the endpoint exists,
    # so it gets only the two below
    with live_server.uow() as uow:
        fan_out(uow, utc_now)
    now = utc_now()
    with live_server.uow() as uow:
        org = uow.session.scalar(
            select(Organization).where(Organization.domain == "contoso.example")
        )
        assert org is not None
        endpoint = WebhookEndpoint(
            organization_id=org.id,
            url=URL,
            secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            confirms_removal=True,
            failing_since=now,
            created_at=now,
            updated_at=now,
        )
        uow.session.add(endpoint)
        for kind in ("membership.soft_deleted", "membership.purge_pending"):
            uow.session.add(
                Event(
                    event_id=f"msg_{uuid.uuid4().hex}",
                    type=kind,
                    organization_id=org.id,
                    occurred_at=now,
                    payload=json.dumps({"type": kind, "timestamp": now.isoformat(), "data": {}}),
                )
            )
        uow.commit()
        endpoint_id = endpoint.id
    with live_server.uow() as uow:
        fan_out(uow, utc_now)
    with live_server.uow() as uow:
        for delivery in uow.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        ):
            delivery.state, delivery.attempts, delivery.next_attempt_at = "failed", 7, None
            delivery.last_status_code = 503
            delivery.last_error = "HTTP 503: the file store is down for maintenance until tonight"
        uow.commit()
    page.goto("/sign-in")
    page.get_by_role("button", name=re.compile(re.escape("admin@contoso.example"))).click()
    page.wait_for_url(re.compile(r"/admin/"))
    page.goto("/admin/contoso.example/webhooks")
    page.get_by_role("link", name=f"Deliveries to {URL}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhook")
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("failed")
    screenshot("webhook-deliveries")
    rows.first.get_by_role("button", name=re.compile("^Retry")).click()
    expect(page.get_by_role("status").or_(page.locator(".notice--success")).first).to_be_visible()
    expect(page.locator("tbody")).to_contain_text("pending")
    screenshot("webhook-deliveries-retried")
