"""What a person does in a browser: a guest leaves (or is told whom to ask), an admin
changes the leave setting, restores one deleted user and permanently deletes another.

Each test saves screenshots under ``var/screenshots/``. The demo (``cli.demo``) is
shared by the session, so each test uses its own users and organizations.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from memberships import admin, reading, timers
from memberships.clock import utc_now
from memberships.principal import SYSTEM

pytestmark = pytest.mark.browser


def sign_in(page: Any, email: str) -> None:
    page.goto("/sign-in")
    page.get_by_role("button", name=re.compile(re.escape(email))).click()
    expect(page.get_by_role("heading", name="Organizations", exact=True)).to_be_visible()


def membership_id(live_server: Any, org: str, email: str) -> str:
    with live_server.uow() as uow:
        found = reading.show_membership(uow, utc_now, SYSTEM, org, email)["membership"]
    return str(found.id)


def test_sign_in_page_lists_the_demo_users(page, screenshot):
    # Given the development sign-in, When the sign-in page opens
    page.goto("/sign-in")
    # Then the demo users are there to pick from
    expect(page.get_by_role("button", name=re.compile("alice@woodgrove.example"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("admin@contoso.example"))).to_be_visible()
    screenshot("sign-in")


def test_a_guest_leaves_an_allowed_organization_and_sees_it_leaving_then_gone(
    page, live_server, screenshot
):
    # Given alice, a guest of Contoso, which lets external users leave
    sign_in(page, "alice@woodgrove.example")
    screenshot("organizations")
    # When she selects Leave, Then she is asked to confirm
    page.get_by_role("link", name="Leave Contoso").click()
    dialog = page.get_by_role("dialog", name="Leave Contoso?")
    expect(dialog).to_be_visible()
    screenshot("leave-confirmation")
    # When she confirms
    dialog.get_by_role("button", name="Leave", exact=True).click()
    # Then the page shows the membership leaving
    expect(page.get_by_text("Your request to leave was accepted.")).to_be_visible()
    expect(page.get_by_text(re.compile("Leaving Contoso"))).to_be_visible()
    screenshot("organizations-leaving")
    # When the service carries the leave out
    with live_server.uow() as uow:
        done = timers.complete_leave(
            uow, utc_now, membership_id(live_server, "contoso.example", "alice@woodgrove.example")
        )
    assert done is not None and done.state == "soft-deleted"
    page.reload()
    # Then Contoso is gone from her organizations, and the page says she has left
    expect(page.get_by_text(re.compile("You have left Contoso"))).to_be_visible()
    expect(page.get_by_test_id("org-contoso.example")).to_have_count(0)
    screenshot("organizations-left")


def test_a_refused_leave_shows_the_contact_email_and_privacy_statement(page, screenshot):
    # Given alice, a guest of Fabrikam, which does not let external users leave
    sign_in(page, "alice@woodgrove.example")
    # When she selects Leave and confirms
    page.get_by_role("link", name="Leave Fabrikam").click()
    page.get_by_role("dialog", name="Leave Fabrikam?").get_by_role(
        "button", name="Leave", exact=True
    ).click()
    # Then she is told to contact the admin or privacy contact, with both links
    alert = page.get_by_test_id("leave-denied")
    expect(alert).to_contain_text("Contact the organization's admin or privacy contact")
    expect(alert.get_by_role("link", name="privacy@fabrikam.example")).to_have_attribute(
        "href", "mailto:privacy@fabrikam.example"
    )
    expect(
        alert.get_by_role("link", name="Read the organization's privacy statement")
    ).to_have_attribute("href", "https://fabrikam.example/privacy")
    # and Fabrikam is still among her organizations
    expect(page.get_by_test_id("org-fabrikam.example")).to_have_count(1)
    screenshot("leave-refused")


def test_the_home_organization_offers_no_leave(page):
    # Given alice, whose home organization is Woodgrove Bank
    sign_in(page, "alice@woodgrove.example")
    # Then Woodgrove Bank is under "Home organization" and has no Leave
    expect(page.get_by_role("heading", name="Home organization")).to_be_visible()
    home = page.get_by_test_id("org-woodgrove.example")
    expect(home).to_be_visible()
    expect(home.get_by_role("link", name=re.compile("Leave"))).to_have_count(0)
    expect(
        page.get_by_role("heading", name="Other organizations you collaborate with")
    ).to_be_visible()


def test_a_user_without_home_organization_sees_just_organizations(page):
    # Given bob, a personal account with no home organization
    sign_in(page, "bob@personal.example")
    # Then there is no home section, only the organizations with Leave
    expect(page.get_by_role("heading", name="Home organization")).to_have_count(0)
    expect(
        page.get_by_role("heading", name="Other organizations you collaborate with")
    ).to_have_count(0)
    expect(page.get_by_role("link", name="Leave Northwind Traders")).to_be_visible()


def test_an_admin_changes_the_leave_setting_once_a_privacy_profile_exists(page, screenshot):
    # Given Northwind Traders has no privacy profile
    sign_in(page, "admin@northwind.example")
    page.goto("/admin/northwind.example/settings")
    # Then the leave setting is disabled, with the reason
    expect(page.get_by_role("radio", name=re.compile("^No"))).to_be_disabled()
    expect(page.locator("#leave-disabled-why")).to_contain_text(
        "unavailable until Northwind Traders has a privacy profile"
    )
    screenshot("settings-without-privacy-profile")
    # When the admin adds a privacy profile
    page.get_by_label("Privacy contact e-mail").fill("privacy@northwind.example")
    page.get_by_label("Privacy statement URL").fill("https://northwind.example/privacy")
    page.get_by_role("button", name="Save privacy profile").click()
    expect(page.get_by_text("The privacy profile is saved.")).to_be_visible()
    # Then the setting is available; When they choose No and save
    page.get_by_role("radio", name=re.compile("^No")).check()
    page.get_by_role("button", name="Save leave setting").click()
    # Then it is saved and shown as No
    expect(page.get_by_text("The external user leave setting is saved.")).to_be_visible()
    expect(page.get_by_role("radio", name=re.compile("^No"))).to_be_checked()
    screenshot("settings")


def test_an_admin_restores_one_deleted_user_and_permanently_deletes_another(
    page, live_server, screenshot
):
    # Given bob and carol were removed from Contoso (soft-deleted)
    for email in ("bob@personal.example", "carol@woodgrove.example"):
        with live_server.uow() as uow:
            admin.remove(
                uow,
                utc_now,
                SYSTEM,
                "contoso.example",
                membership_id(live_server, "contoso.example", email),
            )
    carol = membership_id(live_server, "contoso.example", "carol@woodgrove.example")
    sign_in(page, "admin@contoso.example")
    page.get_by_role("link", name="Administration").click()
    page.get_by_role("link", name="Deleted users").click()
    expect(page.get_by_role("heading", name="Deleted users")).to_be_visible()
    expect(page.get_by_test_id("deleted-bob@personal.example")).to_be_visible()
    screenshot("deleted-users")
    # When the admin restores bob
    page.get_by_role("button", name="Restore Bob Example").click()
    # Then bob is back, with his groups, and no longer listed
    expect(page.get_by_text(re.compile("Bob Example is restored with 1 group"))).to_be_visible()
    expect(page.get_by_test_id("deleted-bob@personal.example")).to_have_count(0)
    # When the admin ticks carol and selects Delete permanently
    page.get_by_role("checkbox", name="Select Carol Example").check()
    page.get_by_role("button", name="Delete permanently").first.click()
    # Then a confirmation says it cannot be undone
    dialog = page.get_by_role("dialog", name="Delete permanently?")
    expect(dialog).to_contain_text("This cannot be undone.")
    expect(dialog).to_contain_text("1 user(s)")
    screenshot("delete-permanently-confirmation")
    # When they confirm
    dialog.get_by_role("button", name="Delete permanently").click()
    # Then carol's data removal has started and she is gone from Deleted users
    expect(page.get_by_text(re.compile("1 user\\(s\\) permanently deleted"))).to_be_visible()
    expect(page.get_by_test_id("deleted-carol@woodgrove.example")).to_have_count(0)
    # and her membership record shows the removal in progress on the lifecycle
    page.goto(f"/admin/contoso.example/memberships/{carol}")
    expect(page.get_by_test_id("state")).to_have_text("Purge pending")
    expect(page.get_by_test_id("removal-progress")).to_be_visible()
    expect(page.locator(".step--current")).to_contain_text("Purge pending")
    screenshot("membership")


def test_a_member_without_the_admin_role_gets_a_403_page(page, screenshot):
    # Given alice, who administers nothing
    sign_in(page, "alice@woodgrove.example")
    # When she opens Contoso's settings
    response = page.goto("/admin/contoso.example/settings")
    # Then she gets a readable 403 page
    assert response is not None and response.status == 403
    expect(page.get_by_text("Error 403")).to_be_visible()
    expect(page.get_by_role("heading", name="You are not allowed to do this")).to_be_visible()
    screenshot("forbidden")


def test_a_form_posted_without_its_csrf_token_is_refused(page, live_server, screenshot):
    # Given dan, a guest of Contoso who may leave, on his Organizations page
    sign_in(page, "dan@personal.example")
    # When the form's CSRF token is stripped before Leave is confirmed
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    page.get_by_role("link", name="Leave Contoso").click()
    page.get_by_role("dialog", name="Leave Contoso?").get_by_role(
        "button", name="Leave", exact=True
    ).click()
    # Then the post is refused with a readable 400 page
    expect(page.get_by_text("Error 400")).to_be_visible()
    expect(page.get_by_role("heading", name="The form has expired")).to_be_visible()
    screenshot("csrf-refused")
    # and dan is still a member of Contoso
    with live_server.uow() as uow:
        found = reading.show_membership(
            uow, utc_now, SYSTEM, "contoso.example", "dan@personal.example"
        )
    assert found["membership"].state == "active"
    # and a bare cross-site style post, without any token, is refused the same way
    response = page.request.post(live_server.url("/account/organizations/contoso.example/leave"))
    assert response.status == 400


def test_an_operator_watches_timers_and_queues(page, screenshot):
    # Given the platform operator
    sign_in(page, "ops@woodgrove.example")
    # When they open Operations
    page.get_by_role("link", name="Operations").click()
    # Then the timers and the queues are shown
    expect(page.get_by_role("heading", name="Timers")).to_be_visible()
    expect(page.get_by_text("Memberships by state")).to_be_visible()
    expect(page.get_by_role("heading", name="Queues")).to_be_visible()
    screenshot("operations")
