"""An admin's pages through Flask's test client: settings, deleted users, membership record."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pages_helpers import Visitor, text_of

from memberships import admin, automatic, reading, self_service


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Visitor:
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


def _signed_in(visitor: Visitor, world: Any, user: str) -> Visitor:
    assert visitor.sign_in(world.users[user]).status_code == 303
    return visitor


def _membership(world: Any, org: str, membership_id: str) -> Any:
    with world.uow() as uow:
        return reading.get_membership(
            uow, world.clock, world.principal("gadmin"), org, membership_id
        )


def test_leave_setting_is_disabled_with_an_explanation_until_a_privacy_profile_exists(
    visitor, world
):
    # Given bare.example has no privacy profile, When its admin opens the settings
    page = _signed_in(visitor, world, "bareadmin").get("/admin/bare.example/settings")
    html = page.get_data(as_text=True)
    # Then the Yes/No choice is disabled and the page says what is missing
    assert page.status_code == 200
    assert "<fieldset disabled" in html
    assert "unavailable until Bare has a privacy profile" in text_of(page)


def test_posting_the_leave_setting_without_a_privacy_profile_is_refused_and_changes_nothing(
    visitor, world
):
    # Given bare.example has no privacy profile
    _signed_in(visitor, world, "bareadmin")
    # When its admin posts No anyway
    response = visitor.submit(
        "/admin/bare.example/settings",
        "/admin/bare.example/settings/external-user-leave",
        {"allowed": "no"},
    )
    # Then the page says a privacy profile is needed, and leaving stays allowed
    page = visitor.follow(response)
    assert "has no privacy profile" in text_of(page)
    with world.uow() as uow:
        org = reading.get_organization(
            uow, world.clock, world.principal("bareadmin"), "bare.example"
        )
    assert org.external_user_leave_allowed is True


def test_an_admin_saves_a_privacy_profile_then_can_turn_leave_off(visitor, world):
    # Given bare.example without a privacy profile
    _signed_in(visitor, world, "bareadmin")
    # When its admin saves a privacy profile
    saved = visitor.submit(
        "/admin/bare.example/settings",
        "/admin/bare.example/settings/privacy-profile",
        {"contact_email": "privacy@bare.example", "statement_url": "https://bare.example/privacy"},
    )
    page = visitor.follow(saved)
    # Then the leave setting is available
    assert "The privacy profile is saved." in text_of(page)
    assert "<fieldset disabled" not in page.get_data(as_text=True)
    # When the admin chooses No
    visitor.follow(
        visitor.submit(
            "/admin/bare.example/settings",
            "/admin/bare.example/settings/external-user-leave",
            {"allowed": "no"},
        )
    )
    # Then a guest of bare.example can no longer leave on their own
    with world.uow() as uow:
        entry = self_service.get_my_organization(uow, world.principal("ann"), "bare.example")
    assert entry.can_leave is False and entry.leave_blocked_reason == "leave-disabled"


def test_an_invalid_privacy_contact_is_shown_next_to_its_field_with_what_was_typed(visitor, world):
    # Given open's admin, When they save a privacy profile with a bad e-mail address
    _signed_in(visitor, world, "gadmin")
    response = visitor.submit(
        "/admin/open.example/settings",
        "/admin/open.example/settings/privacy-profile",
        {"contact_email": "not-an-address", "statement_url": "https://open.example/new"},
    )
    page = visitor.follow(response)
    html = page.get_data(as_text=True)
    # Then the field is marked invalid, the message is shown and the input is kept
    assert 'aria-invalid="true" aria-describedby="contact_email-error"' in html
    assert 'value="not-an-address"' in html
    # and the stored profile is unchanged
    with world.uow() as uow:
        org = reading.get_organization(uow, world.clock, world.principal("gadmin"), "open.example")
    assert org.privacy_contact_email == "privacy@open.example"


def test_deleted_users_lists_each_soft_deleted_guest_with_its_dates(visitor, world):
    # Given ann was removed from open (soft-deleted, restorable for 30 days)
    world.soft_delete("open", "ann", by=world.principal("gadmin"))
    # When open's admin opens Deleted users
    page = _signed_in(visitor, world, "gadmin").get("/admin/open.example/deleted-users")
    text = text_of(page)
    # Then ann is listed with the deletion date and the date permanent deletion starts
    assert "ann@mail.example" in text
    assert "5 Jan 2026, 09:00 UTC" in text
    assert "4 Feb 2026, 09:00 UTC" in text
    # and active members are not
    assert "off@mail.example" not in text


def test_restore_brings_the_guest_back_with_the_groups_and_roles(visitor, world):
    # Given ann was removed from open
    membership_id = world.soft_delete("open", "ann", by=world.principal("gadmin"))
    _signed_in(visitor, world, "gadmin")
    # When the admin presses Restore
    response = visitor.submit(
        "/admin/open.example/deleted-users",
        f"/admin/open.example/deleted-users/{membership_id}/restore",
    )
    page = visitor.follow(response)
    # Then the page confirms it with the grants, and ann is no longer listed
    assert "is restored with 2 group and role assignment(s)" in text_of(page)
    assert f'value="{membership_id}"' not in page.get_data(as_text=True)
    assert _membership(world, "open.example", membership_id).state == "restored"


def test_delete_permanently_asks_for_confirmation_that_says_it_cannot_be_undone(visitor, world):
    # Given ann was removed from open
    membership_id = world.soft_delete("open", "ann", by=world.principal("gadmin"))
    _signed_in(visitor, world, "gadmin")
    # When the admin ticks her and presses Delete permanently (no scripts)
    page = visitor.submit(
        "/admin/open.example/deleted-users",
        "/admin/open.example/deleted-users/delete-permanently",
        {"membership_id": membership_id},
    )
    # Then a confirmation says it cannot be undone, and nothing has happened yet
    assert page.status_code == 200
    assert "This cannot be undone." in text_of(page)
    assert "ann@mail.example" in text_of(page)
    assert _membership(world, "open.example", membership_id).state == "soft-deleted"


def test_confirmed_delete_permanently_starts_data_removal_for_the_selected_only(visitor, world):
    # Given ann and off were removed from open
    ann = world.soft_delete("open", "ann", by=world.principal("gadmin"))
    off = world.soft_delete("open", "off", by=world.principal("gadmin"))
    _signed_in(visitor, world, "gadmin")
    # When the admin deletes ann permanently and confirms
    response = visitor.submit(
        "/admin/open.example/deleted-users",
        "/admin/open.example/deleted-users/delete-permanently",
        {"membership_id": ann, "confirmed": "yes"},
    )
    page = visitor.follow(response)
    # Then ann's data removal has started, and off is still restorable
    assert "1 of 1 selected permanently deleted" in text_of(page)
    assert _membership(world, "open.example", ann).state == "purge-pending"
    assert _membership(world, "open.example", off).state == "soft-deleted"


def test_delete_permanently_with_nothing_selected_asks_for_a_selection(visitor, world):
    # Given a deleted user, When the admin presses Delete permanently with nothing ticked
    world.soft_delete("open", "ann", by=world.principal("gadmin"))
    _signed_in(visitor, world, "gadmin")
    response = visitor.submit(
        "/admin/open.example/deleted-users", "/admin/open.example/deleted-users/delete-permanently"
    )
    # Then the page asks to select someone
    assert "Select at least one deleted user" in text_of(visitor.follow(response))


def test_membership_page_shows_state_grants_timeline_and_highlighted_diagram(visitor, world):
    # Given ann left open and the service carried it out
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("open", "ann"))
    # When open's admin opens her membership
    page = _signed_in(visitor, world, "gadmin").get(
        f"/admin/open.example/memberships/{world.membership('open', 'ann')}"
    )
    html, text = page.get_data(as_text=True), text_of(page)
    # Then the state, the grants and the timeline are there
    assert 'data-testid="state">Soft deleted<' in html
    assert "Group: Sales" in text and "App role: Reader" in text
    assert "Asked to leave by the member: Active → Leave pending" in text
    assert "Leave carried out by the service" in text
    # and the lifecycle shows the current state highlighted, in the picture and in the list
    assert "<svg" in html and html.count('class="node current"') == 1
    assert re.search(r'class="node current">\s*<title>soft_deleted</title>', html)
    assert 'aria-current="step"' in html
    assert html.count('class="step step--current"') == 1
    assert "Soft deleted current" in text


def test_membership_page_shows_data_removal_progress_while_purge_pending(visitor, world):
    # Given ann's membership in open was permanently deleted (2 grants and 120 records)
    membership_id = world.soft_delete("open", "ann", by=world.principal("gadmin"))
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    # When the removal window has passed and the admin opens the membership
    world.clock.advance(timedelta(days=31))
    page = _signed_in(visitor, world, "gadmin").get(
        f"/admin/open.example/memberships/{membership_id}"
    )
    text = text_of(page)
    # Then the progress is shown, and that it is overdue
    assert "0 record(s) removed, 122 left (0%)" in text
    assert '<progress max="100" value="0"' in page.get_data(as_text=True)
    assert "Overdue" in text


def test_a_member_without_an_admin_role_gets_a_404_page(visitor, world):
    # Given ann, a guest of open with no admin role
    _signed_in(visitor, world, "ann")
    # When she opens each admin page of open
    for path in (
        "/admin/open.example/settings",
        "/admin/open.example/deleted-users",
        "/admin/open.example/memberships",
        f"/admin/open.example/memberships/{world.membership('open', 'ann')}",
    ):
        page = visitor.get(path)
        # Then each is a readable 404 page, as for an organization that does not exist,
        # with nothing of the organization's data
        assert page.status_code == 404, path
        assert page.mimetype == "text/html"
        assert "No organization 'open.example'" in text_of(page)
        assert "privacy@open.example" not in page.get_data(as_text=True)


def test_an_admin_of_another_organization_gets_a_404_page(visitor, world):
    # Given cadmin administers closed, When they open open's deleted users
    page = _signed_in(visitor, world, "cadmin").get("/admin/open.example/deleted-users")
    # Then it is the page a made-up organization gets
    made_up = visitor.get("/admin/nowhere.example/deleted-users")
    assert (page.status_code, made_up.status_code) == (404, 404)
    assert text_of(page).replace("open.example", "nowhere.example") == text_of(made_up)


def test_admin_index_lists_only_the_organizations_the_user_administers(visitor, world):
    # Given gadmin administers open only, When they open Administration
    text = text_of(_signed_in(visitor, world, "gadmin").get("/admin/"))
    # Then open is listed, closed is not
    assert "open.example" in text
    assert "closed.example" not in text
