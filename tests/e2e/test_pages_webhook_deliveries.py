"""The admin's pages of webhook deliveries and of connected apps' removal confirmations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from pages_helpers import Visitor, text_of
from sqlalchemy import select

from memberships import admin
from memberships.webhook_delivery import fan_out
from store.models import RemovalAppConfirmation, WebhookDelivery
from tests.integration.test_webhook_delivery import add_endpoint, add_event


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Visitor:
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


def test_the_webhook_page_lists_deliveries_and_retries_a_failed_one(visitor, world, dispatcher):
    endpoint = add_endpoint(
        world, "https://crm.example/hook", enabled=True, failing_since=world.clock()
    )
    add_event(world)
    with world.uow() as uow:
        fan_out(uow, world.clock)
    with world.uow() as uow:
        delivery = uow.session.scalars(select(WebhookDelivery)).one()
        delivery.state, delivery.attempts = "failed", 4
        delivery.last_status_code, delivery.last_error = 500, "HTTP 500: database down"
        delivery.next_attempt_at = None
        uow.commit()
        delivery_id = delivery.id
    assert visitor.sign_in(world.users["gadmin"]).status_code == 303
    listing = visitor.get("/admin/open.example/webhooks").get_data(as_text=True)
    assert f'href="/admin/open.example/webhooks/{endpoint}"' in listing
    page = visitor.get(f"/admin/open.example/webhooks/{endpoint}")
    assert page.status_code == 200
    text = text_of(page)
    assert "membership.soft_deleted" in text and "failed" in text
    assert "HTTP 500: database down" in text and "Every delivery has failed since" in text
    dispatcher.sent.clear()
    response = visitor.submit(
        f"/admin/open.example/webhooks/{endpoint}",
        f"/admin/open.example/webhooks/{endpoint}/deliveries/{delivery_id}/retry",
        {},
    )
    assert response.status_code == 303
    assert "being sent again now" in text_of(visitor.follow(response))
    assert dispatcher.sent == [("deliver_webhook", delivery_id)]


def test_another_organizations_admin_cannot_open_a_webhook_page(visitor, world):
    endpoint = add_endpoint(world, "https://crm.example/hook")
    assert visitor.sign_in(world.users["cadmin"]).status_code == 303
    assert visitor.get(f"/admin/open.example/webhooks/{endpoint}").status_code == 404


def test_the_membership_page_lists_the_apps_and_confirms_one_by_hand(visitor, world):
    app = add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    pat = world.membership("open", "pat")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", pat)
    assert visitor.sign_in(world.users["gadmin"]).status_code == 303
    page = visitor.get(f"/admin/open.example/memberships/{pat}")
    assert "Connected apps" in text_of(page) and "waiting for confirmation" in text_of(page)
    response = visitor.submit(
        f"/admin/open.example/memberships/{pat}",
        f"/admin/open.example/memberships/{pat}/removal-confirmations",
        {"webhook_id": app, "note": "Deleted by the CRM team"},
    )
    assert response.status_code == 303
    after = text_of(visitor.follow(response))
    assert "confirmed" in after and "Deleted by the CRM team" in after
    with world.uow() as uow:
        row = uow.session.scalars(select(RemovalAppConfirmation)).one()
        assert row.confirmed_via == "manual" and row.confirmed_by == world.users["gadmin"]


def test_an_endpoint_disabled_for_failing_too_long_says_why_on_the_pages(visitor, world, policy):
    from datetime import timedelta

    from memberships.webhook_delivery import DeliveryConfig, deliver
    from tests.support.receiver import Reply, running

    # Given an endpoint that has failed every delivery for WEBHOOK_DISABLE_AFTER
    with running([Reply(500, b"database down")]) as receiver:
        endpoint = add_endpoint(
            world,
            receiver.url(),
            failing_since=world.clock() - policy.webhook_disable_after - timedelta(minutes=1),
        )
        add_event(world)
        with world.uow() as uow:
            fan_out(uow, world.clock)
        with world.uow() as uow:
            delivery_id = uow.session.scalars(select(WebhookDelivery.id)).one()
        # When one more attempt fails
        with world.uow() as uow:
            attempt = deliver(
                uow, world.clock, delivery_id, DeliveryConfig(allow_private_networks=True)
            )
    assert attempt is not None and attempt.endpoint_disabled
    # Then the organization's admin sees it disabled, and why, on the list and its page
    assert visitor.sign_in(world.users["gadmin"]).status_code == 303
    listing = text_of(visitor.get("/admin/open.example/webhooks"))
    assert "Disabled" in listing and "Every delivery failed for 5 days" in listing
    assert "HTTP 500: database down" in listing
    page = visitor.get(f"/admin/open.example/webhooks/{endpoint}")
    assert 'data-testid="disabled-reason"' in page.get_data(as_text=True)
    shown = text_of(page)
    assert "Disabled: Every delivery failed for 5 days" in shown
    assert "HTTP 500: database down" in shown
