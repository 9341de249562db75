"""What the member reads of the changes to their memberships: Recent changes on the
Organizations page (a purge included, though the tombstone no longer names them), the
same over ``/v1/me/notices``, and the e-mail setting for their own changes, on the page
and at ``/v1/me/preferences``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from api_helpers import problem
from pages_helpers import Visitor, text_of

from memberships import admin, removal


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Visitor:
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


def _purged(world: Any, org: str = "open", user: str = "ann") -> str:
    membership_id = world.membership(org, user)
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), f"{org}.example", membership_id)
    world.clock.advance(timedelta(days=1))
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), f"{org}.example", membership_id)
    world.clock.advance(timedelta(days=1))
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, membership_id)
    return membership_id


def test_the_page_shows_a_purge_with_its_date_though_the_tombstone_no_longer_names_her(
    visitor, world
):
    # Given ann removed from open, deleted permanently the next day, purged the day after
    _purged(world)
    assert visitor.sign_in(world.users["ann"]).status_code == 303
    # When she opens her Organizations page
    page = visitor.get("/account/organizations")
    text = text_of(page)
    # Then Recent changes tells all three, newest first, each with its date
    assert "Recent changes" in text
    purged = text.index("7 Jan 2026 Your data in Open has been permanently deleted.")
    started = text.index("6 Jan 2026 Open started removing your data")
    removed = text.index("5 Jan 2026 Open removed you.")
    assert purged < started < removed
    # And open is no longer among her organizations
    assert 'data-testid="org-open.example"' not in page.get_data(as_text=True)


def test_a_declined_removal_request_shows_the_organizations_reason(visitor, world):
    with world.uow() as uow:
        uow.notices.record_notice(
            membership_id=world.membership("closed", "ann"),
            kind="removal_request.declined",
            occurred_at=world.clock.now,
            data={"reason": "Your contract runs until March."},
        )
        uow.commit()
    visitor.sign_in(world.users["ann"])
    text = text_of(visitor.get("/account/organizations"))
    assert (
        "Closed declined your request to be removed. Its reason: “Your contract runs until March.”"
        in text
    )


def test_the_member_turns_mail_about_her_own_changes_on_and_off_on_the_page(visitor, world, api):
    visitor.sign_in(world.users["ann"])
    page = visitor.get("/account/organizations").get_data(as_text=True)
    assert (
        'name="email_own_changes"' in page
        and "checked" not in page.split("email_own_changes")[1][:80]
    )
    # When she ticks the box and saves
    response = visitor.submit(
        "/account/organizations", "/account/mail-preferences", {"email_own_changes": "1"}
    )
    assert "You will also get e-mails about changes you make yourself." in text_of(
        visitor.follow(response)
    )
    # Then the API says so, and the box is ticked
    assert api("ann").get("/v1/me/preferences").get_json() == {"emailOwnChanges": True}
    page = visitor.get("/account/organizations").get_data(as_text=True)
    assert "checked" in page.split('name="email_own_changes"')[1][:40]
    # When she saves with the box unticked, it is off again
    visitor.submit("/account/organizations", "/account/mail-preferences", {})
    assert api("ann").get("/v1/me/preferences").get_json() == {"emailOwnChanges": False}


def test_the_preferences_api_changes_only_the_callers_own_setting(api, world):
    # When ann turns it on over the API
    response = api("ann").patch("/v1/me/preferences", json={"emailOwnChanges": True})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.get_json() == {"emailOwnChanges": True}
    # Then hers is on, and pat's is still off
    assert api("ann").get("/v1/me/preferences").get_json() == {"emailOwnChanges": True}
    assert api("pat").get("/v1/me/preferences").get_json() == {"emailOwnChanges": False}
    # And a value that is not a boolean is refused, changing nothing
    refused = api("ann").patch("/v1/me/preferences", json={"emailOwnChanges": "yes"})
    problem(refused, 422, "invalid-input")
    assert api("ann").get("/v1/me/preferences").get_json() == {"emailOwnChanges": True}


def test_my_notices_lists_the_purge_too(api, world):
    _purged(world)
    items = api("ann").get("/v1/me/notices").get_json()["items"]
    assert [i["kind"] for i in items] == [
        "membership.purged",
        "membership.removal_started",
        "membership.removed",
    ]
    assert items[0]["organization"]["displayName"] == "Open"
    assert items[0]["causedByMe"] is False
    assert items[1]["removalDueBy"] is not None
    assert items[2]["restorableUntil"] is not None
    # And nobody else sees them
    assert api("pat").get("/v1/me/notices").get_json()["items"] == []
