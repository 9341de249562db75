"""The admin's Webhooks page through Flask's test client: the list with each endpoint's
state, adding one (its secret shown once, on the answer alone), a refused URL shown next
to its field, disable and enable, rotate (the new secret shown once), delete after a
confirmation, and nobody else's way in."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from pages_helpers import Visitor, text_of

from memberships import webhook_endpoints
from memberships.principal import SYSTEM

PAGE = "/admin/open.example/webhooks"
PUBLIC_URL = "https://93.184.215.14/hooks"
_SECRET = re.compile(r">(whsec_[^<]+)</textarea>")


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Visitor:
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


def _admin(visitor: Visitor, world: Any, user: str = "gadmin") -> Visitor:
    assert visitor.sign_in(world.users[user]).status_code == 303
    return visitor


def _endpoints(world: Any) -> list[webhook_endpoints.WebhookEndpointView]:
    with world.uow() as uow:
        return list(webhook_endpoints.list_webhooks(uow, world.clock, SYSTEM, "open.example").items)


def test_the_admin_navigation_links_to_webhooks(visitor, world):
    page = _admin(visitor, world).get("/admin/open.example/settings")
    assert 'href="/admin/open.example/webhooks"' in page.get_data(as_text=True)
    listing = visitor.get(PAGE)
    assert listing.status_code == 200
    assert "No webhook endpoints yet." in text_of(listing)


def test_adding_an_endpoint_shows_its_secret_once(visitor, world):
    # When open's admin adds an endpoint for one event type, as an app that confirms removals
    answer = _admin(visitor, world).submit(
        PAGE,
        PAGE,
        {
            "url": PUBLIC_URL,
            "description": "CRM",
            "scope": "some",
            "events": ["membership.purged"],
            "confirms_removal": "yes",
        },
    )
    # Then the answer shows the secret, not cached
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Cache-Control"] == "no-store"
    (secret,) = _SECRET.findall(answer.get_data(as_text=True))
    (endpoint,) = _endpoints(world)
    assert (endpoint.url, endpoint.events, endpoint.confirms_removal) == (
        PUBLIC_URL,
        ("membership.purged",),
        True,
    )
    with world.uow() as uow:
        from store.models import WebhookEndpoint

        assert uow.session.get(WebhookEndpoint, endpoint.id).secret == secret
    # And the list shows the endpoint and its state, but never the secret again
    listing = visitor.get(PAGE)
    text = text_of(listing)
    assert PUBLIC_URL in text and "Enabled" in text and "membership.purged" in text
    assert "whsec_" not in listing.get_data(as_text=True)


def test_a_refused_url_is_shown_next_to_its_field_with_what_was_typed(visitor, world):
    answer = _admin(visitor, world).submit(
        PAGE, PAGE, {"url": "https://127.0.0.1/hooks", "scope": "all"}
    )
    html = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert 'id="url-error"' in html and 'aria-invalid="true"' in html
    assert 'value="https://127.0.0.1/hooks"' in html
    assert _endpoints(world) == []


def test_disable_enable_rotate_and_delete(visitor, world):
    with world.uow() as uow:
        created = webhook_endpoints.create_webhook(
            uow, world.clock, SYSTEM, "open.example", PUBLIC_URL
        )
    base = f"{PAGE}/{created.id}"
    _admin(visitor, world)
    # Disable: the list says so, and why
    visitor.follow(visitor.submit(PAGE, f"{base}/enabled", {"enabled": "no"}))
    assert "Disabled Disabled by an admin." in text_of(visitor.get(PAGE))
    # Enable again
    visitor.follow(visitor.submit(PAGE, f"{base}/enabled", {"enabled": "yes"}))
    assert _endpoints(world)[0].enabled is True
    # Rotate: the new secret is shown once
    rotated = visitor.submit(PAGE, f"{base}/rotate-secret")
    (secret,) = _SECRET.findall(rotated.get_data(as_text=True))
    assert secret != created.secret and "24 hours" in text_of(rotated)
    # Delete: without the confirmation, a page asks first and nothing is deleted
    asked = visitor.submit(PAGE, f"{base}/delete")
    assert asked.status_code == 200 and "Delete this endpoint?" in text_of(asked)
    assert len(_endpoints(world)) == 1
    done = visitor.follow(visitor.submit(PAGE, f"{base}/delete", {"confirmed": "yes"}))
    assert "is deleted" in text_of(done)
    assert _endpoints(world) == []


def test_another_organizations_admin_gets_not_found(visitor, world):
    page = _admin(visitor, world, "cadmin").get(PAGE)
    assert page.status_code == 404
