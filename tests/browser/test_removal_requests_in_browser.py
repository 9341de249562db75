"""Removal requests in a browser: a guest Fabrikam does not let leave asks to be removed,
and Fabrikam's admin answers on Removal requests. Each page is screenshotted and checked
at every width from 320 to 1440 px (no sideways scroll) and by axe-core.

The demo is shared by the session: this test makes its own guest (rita)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from memberships import provisioning
from memberships.clock import utc_now
from memberships.principal import SYSTEM

pytestmark = pytest.mark.browser


def sign_in(page: Any, email: str) -> None:
    page.goto("/sign-in")
    page.get_by_role("button", name=re.compile(re.escape(email))).click()
    page.wait_for_url(re.compile(r"/(account/organizations|admin/|ops)"))


def test_a_guest_asks_to_be_removed_and_the_admin_answers(page, live_server, screenshot):
    # Given rita, a guest of Fabrikam (which does not let external users leave)
    with live_server.uow() as uow:
        provisioning.create_user(
            uow, utc_now, SYSTEM, "rita@personal.example", "Rita Requester-With-A-Long-Name"
        )
    with live_server.uow() as uow:
        provisioning.add_guest(
            uow, utc_now, SYSTEM, "fabrikam.example", "rita@personal.example", "b2b-collaboration"
        )
    sign_in(page, "rita@personal.example")
    card = page.get_by_test_id("org-fabrikam.example")
    # When she asks, with a message
    card.get_by_label("Message to Fabrikam (optional)").fill("My project ended in June.")
    card.get_by_role("button", name="Ask Fabrikam to remove me").click()
    # Then her card says when the answer is due
    card = page.get_by_test_id("org-fabrikam.example")
    expect(card).to_contain_text("answer due by")
    screenshot("removal-request-asked")
    # When Fabrikam's admin opens Removal requests from the organization's tabs
    sign_in(page, "idp-admin@fabrikam.example")
    page.goto("/admin/fabrikam.example/removal-requests")
    expect(page.get_by_role("heading", level=1)).to_have_text("Removal requests")
    expect(page.get_by_text("My project ended in June.")).to_be_visible()
    screenshot("removal-requests")
    # and declines without a reason: the error is next to the field, which is marked
    request = page.locator(".request", has_text="Rita Requester")
    request.get_by_role("button", name=re.compile("^Decline")).click()
    request = page.locator(".request", has_text="Rita Requester")
    field = request.get_by_label("Reason for declining (the member reads it)")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(request.get_by_role("alert")).to_contain_text("Say why the request is declined")
    screenshot("removal-requests-decline-error")
    # With a reason the request is declined, and rita reads it
    field.fill("Your contract with Fabrikam runs until March.")
    request.get_by_role("button", name=re.compile("^Decline")).click()
    expect(page.get_by_role("status").first).to_contain_text("Request declined")
    sign_in(page, "rita@personal.example")
    expect(page.get_by_test_id("org-fabrikam.example")).to_contain_text(
        "Your contract with Fabrikam runs until March."
    )
