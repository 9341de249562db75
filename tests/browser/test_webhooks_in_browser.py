"""An admin's Webhooks page in a browser: add an endpoint and copy its secret (shown
once), disable it, rotate its secret, delete it through the dialog. Every view fits
320 to 1440 px without scrolling sideways and has no serious accessibility violation
(the ``screenshot`` fixture checks both)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

PAGE = "/admin/contoso.example/webhooks"
# A long public address, to show how the list wraps it on a phone.
URL = "https://93.184.215.14/hooks/membership-lifecycle/contoso-customer-relationship-manager"


def sign_in(page, email: str) -> None:
    page.goto("/sign-in")
    page.get_by_role("button", name=re.compile(re.escape(email))).click()
    page.wait_for_url(re.compile(r"/admin/"))


def test_an_admin_adds_disables_rotates_and_deletes_an_endpoint(page, screenshot):
    sign_in(page, "admin@contoso.example")
    # The organization's admin tabs lead to Webhooks
    page.goto("/admin/contoso.example/settings")
    page.get_by_role("link", name="Webhooks").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Webhooks")
    # A refused address comes back next to its field
    page.get_by_label("URL", exact=True).fill("https://127.0.0.1/hooks")
    page.get_by_role("button", name="Add endpoint").click()
    expect(page.locator("#url-error")).to_contain_text("public addresses")
    screenshot("webhooks-refused-url")
    # When the admin adds an endpoint for two event types, as an app that confirms removals
    page.get_by_label("URL", exact=True).fill(URL)
    page.get_by_label("Description (optional)").fill("CRM")
    page.get_by_label("Only these:").check()
    page.get_by_label("membership.purge_pending").check()
    page.get_by_label("membership.purged").check()
    page.get_by_label("This app holds guests' data and confirms each removal").check()
    page.get_by_role("button", name="Add endpoint").click()
    # Then the secret is shown, once
    secret = page.get_by_label("Signing secret")
    expect(secret).to_have_value(re.compile(r"^whsec_"))
    screenshot("webhook-secret")
    page.get_by_role("link", name=re.compile("back to Webhooks")).click()
    # And the list shows the endpoint, enabled, without the secret
    row = page.locator("tbody tr").filter(has_text=URL)
    expect(row).to_contain_text("Enabled")
    expect(row).to_contain_text("membership.purge_pending, membership.purged")
    assert "whsec_" not in page.content()
    screenshot("webhooks")
    # When it is disabled, the list says so and why
    row.get_by_role("button", name=re.compile("^Disable")).click()
    row = page.locator("tbody tr").filter(has_text=URL)
    expect(row).to_contain_text("Disabled by an admin.")
    # When its secret is rotated, the new one is shown once
    row.get_by_role("button", name=re.compile("^Rotate the secret")).click()
    expect(page.get_by_label("Signing secret")).to_have_value(re.compile(r"^whsec_"))
    expect(page.get_by_text("For the next 24 hours")).to_be_visible()
    page.get_by_role("link", name=re.compile("back to Webhooks")).click()
    # When it is deleted through the dialog, it is gone
    row = page.locator("tbody tr").filter(has_text=URL)
    row.get_by_role("button", name=re.compile("^Delete")).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("Delete this endpoint?")
    dialog.get_by_role("button", name="Delete").click()
    expect(page.get_by_text("is deleted: nothing more is sent there")).to_be_visible()
    expect(page.locator("tbody tr").filter(has_text=URL)).to_have_count(0)
