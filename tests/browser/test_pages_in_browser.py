"""What a person does in a browser: a guest leaves (or is told whom to ask), an admin
changes the leave setting, lists the members, restores one deleted user and permanently
deletes another; the confirmation pages used without scripts; the error pages.

Each test saves screenshots under ``var/screenshots/``. The demo (``cli.demo``) is
shared by the session, so each test uses its own users and organizations.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import redis
from dramatiq import Message
from playwright.sync_api import expect

from memberships import admin, automatic, provisioning, reading, removal, self_service
from memberships.clock import utc_now
from memberships.errors import LeaveDenied
from memberships.principal import SYSTEM, Principal
from settings import Settings
from tests.support.harness import redis_server
from web.pages import account
from web.services import EXTENSION_KEY
from workers.broker import NAMESPACE, build_broker

pytestmark = pytest.mark.browser

PHONE = {"width": 375, "height": 812}


def sign_in(page: Any, email: str) -> None:
    """Pick the user; they land where their work is (admins on Administration, operators
    on Operations, everyone else on Organizations)."""
    page.goto("/sign-in")
    page.get_by_role("button", name=re.compile(re.escape(email))).click()
    page.wait_for_url(re.compile(r"/(account/organizations|admin/|ops)"))
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def membership_id(live_server: Any, org: str, email: str) -> str:
    with live_server.uow() as uow:
        found = reading.show_membership(uow, utc_now, SYSTEM, org, email)["membership"]
    return str(found.id)


def new_guest(live_server: Any, org: str, email: str, name: str) -> str:
    """A user of no home organization, made a collaboration guest of ``org`` just for one test."""
    with live_server.uow() as uow:
        provisioning.create_user(uow, utc_now, SYSTEM, email, name)
    with live_server.uow() as uow:
        provisioning.add_guest(uow, utc_now, SYSTEM, org, email, "b2b-collaboration")
    return membership_id(live_server, org, email)


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
        done = automatic.complete_leave(
            uow, utc_now, membership_id(live_server, "contoso.example", "alice@woodgrove.example")
        )
    assert done is not None and done.state == "soft-deleted"
    page.reload()
    # Then Contoso is gone from her organizations, and the page says she has left
    expect(page.get_by_text(re.compile("You have left Contoso"))).to_be_visible()
    expect(page.get_by_test_id("org-contoso.example")).to_have_count(0)
    screenshot("organizations-left")


def test_a_card_says_why_leaving_is_not_possible_and_whom_to_contact(page, screenshot):
    # Given alice, a guest of Fabrikam, which does not let external users leave
    sign_in(page, "alice@woodgrove.example")
    # Then Fabrikam's card offers no Leave, and says why and whom to contact, before any click
    card = page.get_by_test_id("org-fabrikam.example")
    expect(card.get_by_role("link", name=re.compile("Leave"))).to_have_count(0)
    why = card.get_by_test_id("cannot-leave-fabrikam.example")
    expect(why).to_contain_text("Fabrikam does not let external users leave on their own")
    expect(why.get_by_role("link", name="privacy@fabrikam.example")).to_have_attribute(
        "href", "mailto:privacy@fabrikam.example"
    )
    expect(why.get_by_role("link", name="Read Fabrikam's privacy statement")).to_have_attribute(
        "href", "https://fabrikam.example/privacy"
    )
    expect(why.get_by_role("link", name="idp-admin@fabrikam.example")).to_be_visible()
    # and Northwind's card, which lets her leave, still offers Leave
    expect(page.get_by_role("link", name="Leave Northwind Traders")).to_be_visible()
    screenshot("leave-not-possible")


def test_an_account_disabled_in_the_organization_is_told_on_the_card_with_whom_to_contact(
    page, live_server
):
    # Given hugo, a guest whose account Contoso has disabled (an account disabled at
    # home, like the demo's erin, can't sign in at all)
    with live_server.uow() as uow:
        provisioning.create_user(uow, utc_now, SYSTEM, "hugo@personal.example", "Hugo Example")
    with live_server.uow() as uow:
        provisioning.add_guest(
            uow,
            utc_now,
            SYSTEM,
            "contoso.example",
            "hugo@personal.example",
            "b2b-collaboration",
            enabled=False,
        )
    sign_in(page, "hugo@personal.example")
    card = page.get_by_test_id("org-contoso.example")
    # Then Contoso's card says so, with Contoso's admin, and offers no Leave
    expect(card).to_contain_text("Your account is disabled")
    expect(card.get_by_role("link", name="admin@contoso.example")).to_be_visible()
    expect(card.get_by_role("link", name=re.compile("Leave"))).to_have_count(0)


def test_the_home_organizations_leave_address_says_it_cannot_be_left(page, screenshot):
    # Given alice, When she opens her home organization's leave address by hand
    sign_in(page, "alice@woodgrove.example")
    page.goto("/account/organizations/woodgrove.example/leave")
    # Then it says it cannot be left, and whom to contact; there is no Leave button
    expect(
        page.get_by_role("heading", name="Woodgrove Bank is your home organization", level=1)
    ).to_be_visible()
    expect(page.get_by_role("link", name="privacy@woodgrove.example")).to_be_visible()
    expect(page.get_by_role("button", name="Leave")).to_have_count(0)
    screenshot("home-cannot-be-left")


def test_a_guest_removed_by_the_admin_is_told_what_happened_and_whom_to_ask(
    page, live_server, screenshot
):
    # Given lena, removed from Contoso by its admin
    lena = new_guest(live_server, "contoso.example", "lena@personal.example", "Lena Example")
    with live_server.uow() as uow:
        admin.remove(uow, utc_now, SYSTEM, "contoso.example", lena)
    sign_in(page, "lena@personal.example")
    # Then her Organizations page lists the change, with its date
    recent = page.get_by_test_id("recent-changes")
    expect(recent).to_contain_text("Contoso removed you.")
    expect(recent).to_contain_text("It can restore your account until")
    screenshot("organizations-recent-changes")
    # When she opens Contoso by its address
    page.goto("/account/organizations?tenantId=contoso.example")
    # Then she is told Contoso removed her, until when it can restore her, and whom to ask
    focus = page.get_by_test_id("focus")
    expect(focus).to_contain_text("Contoso removed you on")
    expect(focus).to_contain_text("The organization can restore it until")
    expect(focus.get_by_role("link", name="admin@contoso.example")).to_be_visible()
    expect(focus).not_to_contain_text("You have left")
    screenshot("organizations-removed-by-organization")


def test_recent_changes_list_removed_restored_data_removal_started_and_purged_with_dates(
    page, live_server, screenshot
):
    # Given vera, removed from Contoso and restored; and from Northwind Traders removed,
    # deleted permanently and her data removed (the tombstone no longer names her)
    vera = new_guest(live_server, "contoso.example", "vera@personal.example", "Vera Example")
    with live_server.uow() as uow:
        admin.remove(uow, utc_now, SYSTEM, "contoso.example", vera)
    with live_server.uow() as uow:
        admin.restore(uow, utc_now, SYSTEM, "contoso.example", vera)
    with live_server.uow() as uow:
        provisioning.add_guest(
            uow, utc_now, SYSTEM, "northwind.example", "vera@personal.example", "b2b-collaboration"
        )
    gone = membership_id(live_server, "northwind.example", "vera@personal.example")
    with live_server.uow() as uow:
        admin.remove(uow, utc_now, SYSTEM, "northwind.example", gone)
    with live_server.uow() as uow:
        admin.purge(uow, utc_now, SYSTEM, "northwind.example", gone)
    with live_server.uow() as uow:
        removal.remove_all_data(uow, utc_now, gone)
    # When she opens Organizations
    sign_in(page, "vera@personal.example")
    # Then Recent changes says each change in a sentence, each with its date
    today = utc_now().strftime("%-d %b %Y")
    recent = page.get_by_test_id("recent-changes")
    for change, sentence in (
        ("removed", "Contoso removed you."),
        ("restored", "Contoso restored your account."),
        ("removal-started", "Northwind Traders started removing your data; it will be gone by"),
        ("purged", "Your data in Northwind Traders has been permanently deleted."),
    ):
        row = recent.locator(f"[data-change='{change}']").filter(has_text=sentence)
        expect(row).to_contain_text(sentence)
        expect(row.locator(".change__when")).to_have_text(today)
    # and Contoso is hers again, with Leave
    expect(page.get_by_role("link", name="Leave Contoso")).to_be_visible()
    screenshot("organizations-recent-changes-all")


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
    expect(page.get_by_test_id("results")).to_contain_text("1 of 1 selected permanently deleted")
    expect(page.get_by_test_id("deleted-carol@woodgrove.example")).to_have_count(0)
    # and her membership record shows the removal in progress on the lifecycle
    page.goto(f"/admin/contoso.example/memberships/{carol}")
    expect(page.get_by_test_id("state")).to_have_text("Purge pending")
    expect(page.get_by_test_id("removal-progress")).to_be_visible()
    expect(page.locator(".step--current")).to_contain_text("Purge pending")
    screenshot("membership")


def test_a_member_without_the_admin_role_gets_the_not_found_page(page, screenshot):
    # Given alice, who administers nothing
    sign_in(page, "alice@woodgrove.example")
    # When she opens Contoso's settings
    response = page.goto("/admin/contoso.example/settings")
    # Then she gets the readable 404 page a made-up organization gets
    assert response is not None and response.status == 404
    expect(page.get_by_text("Error 404")).to_be_visible()
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
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


def test_the_administration_page_lists_the_organizations_an_admin_administers(page, screenshot):
    # Given the admin of Contoso
    sign_in(page, "admin@contoso.example")
    # When they open Administration
    page.get_by_role("link", name="Administration").click()
    # Then Contoso is listed with its three admin pages, and no organization they do not run
    expect(page.get_by_role("heading", name="Administration", level=1)).to_be_visible()
    expect(page.get_by_text("You administer these organizations:")).to_be_visible()
    card = page.locator(".org").filter(has=page.get_by_role("heading", name="Contoso"))
    expect(card).to_contain_text("contoso.example")
    for link in ("External collaboration settings", "Members", "Deleted users"):
        expect(card.get_by_role("link", name=link, exact=True)).to_have_attribute(
            "href", re.compile("^/admin/contoso\\.example/")
        )
    expect(page.get_by_role("heading", name="Fabrikam")).to_have_count(0)
    screenshot("admin-index")


def test_an_admin_lists_the_members_and_filters_them_by_state(page, live_server, screenshot):
    # Given frank, a guest of Contoso, and iris, a guest who was removed from Contoso
    new_guest(live_server, "contoso.example", "frank@personal.example", "Frank Example")
    iris = new_guest(live_server, "contoso.example", "iris@personal.example", "Iris Example")
    with live_server.uow() as uow:
        admin.remove(uow, utc_now, SYSTEM, "contoso.example", iris)
    # When the admin of Contoso opens Members from Administration
    sign_in(page, "admin@contoso.example")
    page.goto("/admin/")
    page.get_by_role("link", name="Members", exact=True).click()
    # Then both are listed, each with their state in words
    expect(page.get_by_role("heading", name="Members", level=1)).to_be_visible()
    frank = page.get_by_role("row", name=re.compile("Frank Example"))
    expect(frank).to_contain_text("Active")
    expect(page.get_by_role("row", name=re.compile("Iris Example"))).to_contain_text("Soft deleted")
    screenshot("members")
    # When they show only the active members
    page.get_by_label("State").select_option("active")
    page.get_by_role("button", name="Show").click()
    # Then frank is still listed and iris is not
    expect(page).to_have_url(re.compile("state=active"))
    expect(frank).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("Iris Example"))).to_have_count(0)


def test_without_scripts_leave_opens_a_confirmation_page(page, live_server, screenshot):
    # Given gina, a guest of Contoso, which lets external users leave
    gina = new_guest(live_server, "contoso.example", "gina@personal.example", "Gina Example")
    sign_in(page, "gina@personal.example")
    # When she follows the Leave link's own address (where it leads without scripts)
    href = page.get_by_role("link", name="Leave Contoso").get_attribute("href")
    assert href is not None and re.fullmatch(r"/account/organizations/[^/]+/leave", href)
    response = page.goto(href)
    # Then a confirmation page says what leaving means
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", name="Leave Contoso?", level=1)).to_be_visible()
    expect(page.get_by_text("no longer be able to use Contoso's apps")).to_be_visible()
    expect(page.get_by_text(re.compile("Your account in Contoso is deleted"))).to_be_visible()
    expect(page.get_by_role("link", name="Cancel")).to_have_attribute(
        "href", "/account/organizations"
    )
    screenshot("leave-confirmation-page")
    # When she confirms there
    page.get_by_role("button", name="Leave", exact=True).click()
    # Then the leave is accepted and her membership is leaving
    expect(page.get_by_text("Your request to leave was accepted.")).to_be_visible()
    with live_server.uow() as uow:
        found = reading.show_membership(
            uow, utc_now, SYSTEM, "contoso.example", "gina@personal.example"
        )
    assert str(found["membership"].id) == gina
    assert found["membership"].state == "leave-pending"


def test_an_admin_confirms_remove_and_delete_permanently_on_their_own_pages(
    page, live_server, screenshot
):
    # Given jack, a guest of Contoso
    jack = new_guest(live_server, "contoso.example", "jack@personal.example", "Jack Example")
    sign_in(page, "admin@contoso.example")
    page.goto(f"/admin/contoso.example/memberships/{jack}")
    # When the admin selects "Remove guest…" on his membership record
    page.get_by_role("button", name="Remove guest…").click()
    # Then a confirmation page says he can be restored from Deleted users
    expect(page.get_by_role("heading", name="Remove Jack Example?", level=1)).to_be_visible()
    expect(page.get_by_text(re.compile("The guest is moved to Deleted users"))).to_be_visible()
    screenshot("remove-confirmation-page")
    # When they confirm
    page.get_by_role("button", name="Remove", exact=True).click()
    # Then he is removed and his record shows it
    expect(page.get_by_text("Jack Example is removed and moved to Deleted users")).to_be_visible()
    expect(page.get_by_test_id("state")).to_have_text("Soft deleted")
    # When they select "Delete permanently…" on the record
    page.get_by_role("button", name="Delete permanently…").click()
    # Then a confirmation page lists him and says it cannot be undone
    expect(page.get_by_role("heading", name="Delete permanently?", level=1)).to_be_visible()
    expect(page.get_by_text("This cannot be undone.")).to_be_visible()
    expect(page.get_by_role("listitem").filter(has_text="Jack Example")).to_contain_text(
        "jack@personal.example"
    )
    screenshot("delete-permanently-confirmation-page")
    # When they confirm
    page.get_by_role("button", name="Delete permanently", exact=True).click()
    # Then his data removal has started and he is gone from Deleted users
    expect(page.get_by_role("heading", name="Deleted users", level=1)).to_be_visible()
    expect(page.get_by_test_id("results")).to_contain_text("1 of 1 selected permanently deleted")
    expect(page.get_by_test_id("deleted-jack@personal.example")).to_have_count(0)


def test_an_unknown_address_gets_a_404_page(page, screenshot):
    # Given a signed-in member
    sign_in(page, "alice@woodgrove.example")
    # When she opens a page address that does not exist
    response = page.goto("/account/nothing-here")
    # Then she gets a readable 404 page
    assert response is not None and response.status == 404
    expect(page.get_by_text("Error 404")).to_be_visible()
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.get_by_text("There is no page at this address.")).to_be_visible()
    expect(page.get_by_role("link", name="Your organizations")).to_be_visible()
    screenshot("not-found")


def test_restoring_from_an_old_page_gets_a_409_page(page, live_server, screenshot):
    # Given kim, removed from Contoso, on the admin's Deleted users page
    kim = new_guest(live_server, "contoso.example", "kim@personal.example", "Kim Example")
    with live_server.uow() as uow:
        admin.remove(uow, utc_now, SYSTEM, "contoso.example", kim)
    sign_in(page, "admin@contoso.example")
    page.goto("/admin/contoso.example/deleted-users")
    expect(page.get_by_test_id("deleted-kim@personal.example")).to_be_visible()
    # and restored meanwhile by someone else
    with live_server.uow() as uow:
        admin.restore(uow, utc_now, SYSTEM, "contoso.example", kim)
    # When the admin selects Restore on the page they still have open
    with page.expect_response(re.compile(f"/deleted-users/{kim}/restore$")) as posted:
        page.get_by_role("button", name="Restore Kim Example").click()
    # Then they get a readable 409 page that says why
    assert posted.value.status == 409
    expect(page.get_by_text("Error 409")).to_be_visible()
    expect(
        page.get_by_role("heading", name="The membership's state does not allow this")
    ).to_be_visible()
    expect(page.get_by_text("does not allow 'restore'")).to_be_visible()
    screenshot("conflict")


def test_an_unexpected_failure_gets_a_500_page_without_details(page, screenshot, monkeypatch):
    # Given a signed-in member, and the Organizations use case failing unexpectedly
    # (the live server runs in this process, so the patch reaches it)
    sign_in(page, "alice@woodgrove.example")

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database exploded: secret connection string")

    monkeypatch.setattr(account, "organizations_overview", broken)
    # When she opens Organizations
    response = page.goto("/account/organizations")
    # Then she gets a readable 500 page that shows nothing of the cause
    assert response is not None and response.status == 500
    expect(page.get_by_text("Error 500")).to_be_visible()
    expect(page.get_by_role("heading", name="Something went wrong on our side")).to_be_visible()
    expect(page.get_by_text(re.compile("It has been logged"))).to_be_visible()
    content = page.content()
    assert "secret connection string" not in content
    assert "RuntimeError" not in content
    screenshot("server-error")


def test_an_admin_lands_on_administration(page):
    # Given the admin of Contoso, When they sign in, Then Administration opens first
    sign_in(page, "admin@contoso.example")
    expect(page).to_have_url(re.compile("/admin/$"))
    expect(page.get_by_role("heading", name="Administration", level=1)).to_be_visible()


def test_every_field_error_shows_at_once_next_to_its_field(page, screenshot):
    # Given Contoso's admin on the settings page
    sign_in(page, "admin@contoso.example")
    page.goto("/admin/contoso.example/settings")
    # When they save a bad e-mail and a bad URL together
    page.get_by_label("Privacy contact e-mail").fill("privacy-at-contoso")
    page.get_by_label("Privacy statement URL").fill("contoso.example/privacy")
    page.get_by_role("button", name="Save privacy profile").click()
    # Then both fields are marked, each with a sentence for people
    email = page.get_by_label("Privacy contact e-mail")
    url = page.get_by_label("Privacy statement URL")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(url).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#contact_email-error")).to_contain_text("like privacy@contoso.example")
    expect(page.locator("#statement_url-error")).to_contain_text("starting with https://")
    expect(page.get_by_text("contactEmail")).to_have_count(0)
    screenshot("settings-field-errors")


def test_bulk_restore_on_deleted_users_reports_each_row(page, live_server, screenshot):
    # Given mia and noah removed from Contoso, and noah restored meanwhile by someone else
    mia = new_guest(live_server, "contoso.example", "mia@personal.example", "Mia Example")
    noah = new_guest(live_server, "contoso.example", "noah@personal.example", "Noah Example")
    for removed in (mia, noah):
        with live_server.uow() as uow:
            admin.remove(uow, utc_now, SYSTEM, "contoso.example", removed)
    sign_in(page, "admin@contoso.example")
    page.goto("/admin/contoso.example/deleted-users")
    with live_server.uow() as uow:
        admin.restore(uow, utc_now, SYSTEM, "contoso.example", noah)
    # When the admin ticks both and selects Restore selected
    page.get_by_role("checkbox", name="Select Mia Example").check()
    page.get_by_role("checkbox", name="Select Noah Example").check()
    page.get_by_role("button", name="Restore selected").click()
    # Then each row says what happened to it
    results = page.get_by_test_id("results")
    expect(results).to_contain_text("1 of 2 selected restored")
    expect(results.get_by_role("listitem").filter(has_text="Mia Example")).to_contain_text("Done")
    expect(results.get_by_role("listitem").filter(has_text="Noah Example")).to_contain_text(
        "Not done"
    )
    screenshot("deleted-users-restore-results")


def test_bulk_remove_on_members_confirms_then_reports_each_row(page, live_server, screenshot):
    # Given olga and paul, guests of Contoso
    new_guest(live_server, "contoso.example", "olga@personal.example", "Olga Example")
    new_guest(live_server, "contoso.example", "paul@personal.example", "Paul Example")
    sign_in(page, "admin@contoso.example")
    page.goto("/admin/contoso.example/memberships?state=active")
    # When the admin ticks both and selects Remove selected
    page.get_by_role("checkbox", name="Select Olga Example").check()
    page.get_by_role("checkbox", name="Select Paul Example").check()
    page.get_by_role("button", name="Remove selected").click()
    # Then a dialog asks to confirm
    dialog = page.get_by_role("dialog", name="Remove the selected guests?")
    expect(dialog).to_contain_text("2 guest(s)")
    screenshot("members-remove-confirmation")
    # When they confirm, Then each row is reported
    dialog.get_by_role("button", name="Remove", exact=True).click()
    expect(page.get_by_test_id("results")).to_contain_text("2 of 2 selected removed")
    screenshot("members-remove-results")


def test_a_purged_record_shows_what_is_true_of_a_tombstone(page, live_server, screenshot):
    # Given quinn, who left Contoso on her own; Contoso's admin deleted her permanently,
    # and her data was removed
    quinn = new_guest(live_server, "contoso.example", "quinn@personal.example", "Quinn Example")
    with live_server.uow() as uow:
        quinn_user = uow.directory.find_user("quinn@personal.example")
        contoso_admin = uow.directory.find_user("admin@contoso.example")
        assert quinn_user is not None and contoso_admin is not None
        quinn_id, admin_id = quinn_user.id, contoso_admin.id
    who, by = Principal.user(quinn_id), Principal.user(admin_id)
    with live_server.uow() as uow:
        self_service.request_leave(uow, utc_now, who, "contoso.example")
    with live_server.uow() as uow:
        automatic.complete_leave(uow, utc_now, quinn)
    with live_server.uow() as uow:
        admin.purge(uow, utc_now, by, "contoso.example", quinn)
    with live_server.uow() as uow:
        removal.remove_all_data(uow, utc_now, quinn)
    sign_in(page, "admin@contoso.example")
    page.goto(f"/admin/contoso.example/memberships/{quinn}")
    # Then the record is a tombstone: no "enabled", no removal deadline, when it ended
    expect(page.get_by_test_id("state")).to_have_text("Purged")
    expect(page.locator(".facts")).to_contain_text("only this record of dates and states is kept")
    expect(page.locator(".facts")).not_to_contain_text("Enabled")
    expect(page.locator(".facts")).not_to_contain_text("Data will be removed by")
    expect(page.get_by_test_id("purged-at")).to_be_visible()
    # and the lifecycle speaks in words
    content = page.content()
    for word in ("[is_collaboration]", "MembershipLifecycle", "purge_due_at"):
        assert word not in content
    # and the timeline shows each actor as a person: the admin by e-mail, the purged
    # guest as "the member", never by her name, e-mail or id
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text("Deleted permanently by admin@contoso.example")
    expect(timeline).to_contain_text("Asked to leave by the member")
    for secret in ("Quinn", "quinn@personal.example", quinn_id, admin_id):
        assert secret not in content, secret
    screenshot("membership-purged")


def test_operations_links_upcoming_deletions_and_says_when_there_are_no_dead_letters(
    page, live_server, screenshot
):
    # Given rosa removed from Contoso (her permanent deletion is due later)
    rosa = new_guest(live_server, "contoso.example", "rosa@personal.example", "Rosa Example")
    with live_server.uow() as uow:
        admin.remove(uow, utc_now, SYSTEM, "contoso.example", rosa)
    # When the operator opens Operations
    sign_in(page, "ops@woodgrove.example")
    expect(page.get_by_role("heading", name="Operations", level=1)).to_be_visible()
    # Then the upcoming deletion is listed with a link, and the page says there are no
    # dead letters (rather than an empty list)
    deletions = page.get_by_role("region", name="Next permanent deletions")
    expect(deletions.get_by_role("link", name=f"Membership {rosa}")).to_be_visible()
    expect(page.get_by_test_id("no-dead-letters")).to_have_text(
        "No dead letters: every message was handled or is still being retried."
    )
    expect(page.get_by_role("button", name="Retry all dead letters")).to_have_count(0)
    screenshot("operations-upcoming-deletions")
    # and the deletion's link opens the membership's record for the operator
    page.get_by_role("link", name=f"Membership {rosa}").click()
    expect(page.get_by_role("heading", name=re.compile("Rosa Example"), level=1)).to_be_visible()


def test_an_unknown_address_opened_in_a_browser_gets_an_html_page(page, screenshot):
    # Given a browser (it asks for HTML first), When it opens an address of no page or API
    response = page.goto("/no-such-page")
    # Then it gets the readable 404 page, not problem+json
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    # while an API client asking for JSON still gets problem+json
    api = page.request.get("/no-such-page", headers={"Accept": "application/json"})
    assert api.status == 404 and api.headers["content-type"] == "application/problem+json"


def _dead_letter(broker: Any, queue: str, membership_id: str) -> None:
    """A real dead letter, made as a worker makes one: enqueued, fetched, refused."""
    message = Message(
        queue_name=queue,
        actor_name="remove_data",
        args=(membership_id,),
        kwargs={},
        options={"retries": 8, "traceback": "Traceback\nConnectionError: store down"},
    )
    broker.enqueue(message)
    [raw] = broker.do_fetch(queue, 1)
    broker.do_nack(queue, Message.decode(raw).options["redis_message_id"])


def test_an_operator_retries_the_dead_letters_on_the_operations_page(
    page, live_server, screenshot, monkeypatch, tmp_path
):
    # Given two removals that failed every retry, in a Redis of this test's own (the
    # live server reads its queues there for this test)
    with redis_server(tmp_path) as redis_url:
        services = live_server.app.extensions[EXTENSION_KEY]
        monkeypatch.setattr(
            services, "settings", services.settings.with_changes(redis_url=redis_url)
        )
        broker = build_broker(Settings(redis_url=redis_url))
        try:
            _dead_letter(broker, "removals", "dead-1")
            _dead_letter(broker, "removals", "dead-2")
            # When the operator opens Operations
            sign_in(page, "ops@woodgrove.example")
            # Then the page says so, with a button to retry them
            expect(page.get_by_text("2 messages failed every retry")).to_be_visible()
            retry = page.get_by_role("button", name="Retry all dead letters")
            expect(retry).to_be_visible()
            screenshot("operations-dead-letters")
            # When they retry them
            retry.click()
            # Then both are back on their queue, and the page says so
            expect(
                page.get_by_text("2 dead letters put back on the queue to run again.")
            ).to_be_visible()
            expect(page.get_by_test_id("no-dead-letters")).to_be_visible()
            client = redis.Redis.from_url(redis_url)
            try:
                waiting = client.hvals(f"{NAMESPACE}:removals.msgs")
                assert sorted(Message.decode(m).args[0] for m in waiting) == ["dead-1", "dead-2"]
            finally:
                client.close()
        finally:
            broker.close()


def test_at_phone_width_a_guest_leaves_and_the_admin_restores_her(page, live_server):
    # Given a phone-sized window, and wendy, a guest of Contoso
    page.set_viewport_size(PHONE)
    wendy = new_guest(live_server, "contoso.example", "wendy@personal.example", "Wendy Example")
    sign_in(page, "wendy@personal.example")
    # When she leaves Contoso
    leave = page.get_by_role("link", name="Leave Contoso")
    expect(leave).to_be_in_viewport()
    leave.click()
    dialog = page.get_by_role("dialog", name="Leave Contoso?")
    expect(dialog.get_by_role("button", name="Leave", exact=True)).to_be_in_viewport()
    dialog.get_by_role("button", name="Leave", exact=True).click()
    expect(page.get_by_text("Your request to leave was accepted.")).to_be_visible()
    with live_server.uow() as uow:
        automatic.complete_leave(uow, utc_now, wendy)
    # and Contoso's admin, on a phone too, opens Deleted users
    page.context.clear_cookies()
    sign_in(page, "admin@contoso.example")
    page.goto("/admin/contoso.example/deleted-users")
    card = page.get_by_test_id("deleted-wendy@personal.example")
    # Then her row is a card with its dates inside it, and Restore is on screen
    deleted_on = card.locator("td[data-label='Deleted on']")
    expect(deleted_on).to_contain_text("UTC")
    cell, row = deleted_on.bounding_box(), card.bounding_box()
    assert cell is not None and row is not None
    assert cell["x"] + cell["width"] <= row["x"] + row["width"] + 1
    restore = page.get_by_role("button", name="Restore Wendy Example")
    restore.scroll_into_view_if_needed()
    expect(restore).to_be_in_viewport()
    box = restore.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    # When the admin restores her, Then she is back
    restore.click()
    expect(page.get_by_text(re.compile("Wendy Example is restored"))).to_be_visible()
    expect(page.get_by_test_id("deleted-wendy@personal.example")).to_have_count(0)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_a_refused_leave_reads_as_a_reason_on_the_membership_record(page, live_server):
    # Given yara, a guest whose account Contoso has disabled, who tried to leave
    with live_server.uow() as uow:
        provisioning.create_user(uow, utc_now, SYSTEM, "yara@personal.example", "Yara Example")
    with live_server.uow() as uow:
        provisioning.add_guest(
            uow,
            utc_now,
            SYSTEM,
            "contoso.example",
            "yara@personal.example",
            "b2b-collaboration",
            enabled=False,
        )
    yara = membership_id(live_server, "contoso.example", "yara@personal.example")
    with live_server.uow() as uow:
        found = uow.directory.find_user("yara@personal.example")
        assert found is not None
        yara_user = found.id
    with live_server.uow() as uow, pytest.raises(LeaveDenied):
        self_service.request_leave(uow, utc_now, Principal.user(yara_user), "contoso.example")
    # When Contoso's admin opens her record
    sign_in(page, "admin@contoso.example")
    page.goto(f"/admin/contoso.example/memberships/{yara}")
    # Then the timeline says who asked and why it was refused, in words
    timeline = page.get_by_role("region", name="Timeline")
    expect(timeline).to_contain_text(
        "Asked to leave by the member refused — because the account is disabled"
    )
    expect(timeline).not_to_contain_text("(account-disabled)")
    expect(page.get_by_test_id("state")).to_have_text("Active")
