"""The use cases behind the web pages: the signed-in account, the Organizations overview,
a membership's timeline with data-removal progress, and permanent delete of a selection."""

from __future__ import annotations

from datetime import timedelta

import pytest

from memberships import accounts, admin, automatic, selection, self_service, timeline
from memberships.errors import InvalidInput, NotFound, TransitionNotAllowed


def test_account_lists_only_the_organizations_the_user_administers(world):
    # Given gadmin administers open, and ops is the platform operator
    # When each reads their account
    with world.uow() as uow:
        gadmin = accounts.account_of(uow, world.principal("gadmin"))
        ops = accounts.account_of(uow, world.principal("ops"))
    # Then gadmin administers open only and is no operator; ops administers nothing
    assert [o.domain for o in gadmin.administers] == ["open.example"]
    assert gadmin.is_operator is False
    assert ops.administers == () and ops.is_operator is True


def test_an_unknown_signed_in_user_has_no_account(world):
    # Given a principal whose user does not exist
    from memberships.principal import Principal

    # When the account is read, Then it is not found
    with world.uow() as uow, pytest.raises(NotFound):
        accounts.account_of(uow, Principal.user("00000000-0000-0000-0000-000000000000"))


def test_sign_in_list_holds_every_enabled_user_by_email(world):
    # Given the world's users, When the sign-in list is read
    with world.uow() as uow:
        users = accounts.users_to_sign_in_as(uow)
    # Then every user but the one disabled at home is there, ordered by e-mail
    emails = [u.email for u in users]
    assert emails == sorted(emails)
    assert len(emails) == len(world.users) - 1
    assert "off@mail.example" not in emails


def test_overview_puts_the_home_organization_apart_and_opens_the_one_asked_for(world):
    # Given ann (home: home.example), When she opens her overview on closed.example by domain
    with world.uow() as uow:
        overview = accounts.organizations_overview(uow, world.principal("ann"), "closed.example")
    # Then home is apart, the others follow, and the focus is closed.example
    assert overview.home is not None and overview.home.organization.domain == "home.example"
    assert [e.organization.domain for e in overview.others] == [
        "bare.example",
        "closed.example",
        "open.example",
    ]
    assert overview.focus is not None and overview.focus.organization.id == world.orgs["closed"]


def test_overview_of_a_user_without_home_has_no_home_section(world):
    # Given pat, a personal account, When pat reads the overview
    with world.uow() as uow:
        overview = accounts.organizations_overview(uow, world.principal("pat"))
    # Then there is no home entry, and the guest membership is among the others
    assert overview.home is None
    assert [e.organization.domain for e in overview.others] == ["open.example"]


def test_overview_says_when_the_user_is_not_a_member_of_the_organization_asked_for(world):
    # Given pat is not a member of closed.example
    # When pat opens the overview on it
    with world.uow() as uow:
        overview = accounts.organizations_overview(uow, world.principal("pat"), "closed.example")
    # Then nothing is focused and the page can say pat is not a member there
    assert overview.focus is None
    assert overview.not_a_member == "closed.example"
    assert [e.organization.domain for e in overview.others] == ["open.example"]


def test_overview_still_shows_a_left_organization_when_asked_for_it(world):
    # Given ann left open.example and the leave was carried out
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("open", "ann"))
    # When she opens the overview on it
    with world.uow() as uow:
        overview = accounts.organizations_overview(uow, world.principal("ann"), "open.example")
    # Then it is no longer listed, but the focus shows it soft-deleted
    assert "open.example" not in [e.organization.domain for e in overview.others]
    assert overview.focus is not None and overview.focus.membership.state == "soft-deleted"


def test_timeline_names_the_member_the_admin_and_the_service(world):
    # Given ann left open.example, the service carried it out and gadmin restored her
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("open", "ann"))
    with world.uow() as uow:
        admin.restore(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            world.membership("open", "ann"),
        )
    # When gadmin reads the membership's details
    with world.uow() as uow:
        details = timeline.membership_details(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            world.membership("open", "ann"),
        )
    # Then the timeline labels each actor, grants are back and no removal is in progress
    actors = {e.event.action: e.actor_label for e in details.timeline}
    assert actors["request_leave"] == "the member"
    assert actors["complete_leave"] == "the service"
    assert actors["restore"] == "gadmin@mail.example"
    assert {g.name for g in details.membership.grants} == {"Sales", "Reader"}
    assert details.removal is None


def test_removal_progress_counts_what_is_left_and_flags_an_overdue_removal(world):
    # Given ann's membership in open is permanently deleted (2 grants, 120 data rows)
    membership_id = world.soft_delete("open", "ann", by=world.principal("gadmin"))
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    # When the removal window has passed and gadmin reads the details
    world.clock.advance(timedelta(days=31))
    with world.uow() as uow:
        details = timeline.membership_details(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id
        )
    # Then the progress shows nothing removed yet, 122 rows left, and overdue
    assert details.removal is not None
    assert details.removal.remaining_rows == 122
    assert details.removal.percent_done == 0
    assert details.removal.overdue is True


def test_membership_details_need_an_admin_of_that_organization(world):
    # Given cadmin administers closed, not open
    # When cadmin reads a membership of open, Then open is not found (for cadmin)
    with world.uow() as uow, pytest.raises(NotFound):
        timeline.membership_details(
            uow,
            world.clock,
            world.principal("cadmin"),
            "open.example",
            world.membership("open", "ann"),
        )


def test_purging_a_selection_decides_each_membership_on_its_own(world):
    # Given ann soft-deleted in open, and off still active there
    deleted = world.soft_delete("open", "ann", by=world.principal("gadmin"))
    active = world.membership("open", "off")
    # When gadmin permanently deletes both
    with world.uow() as uow:
        outcomes = selection.decide_selected(
            uow, world.clock, world.principal("gadmin"), "open.example", [deleted, active], "purge"
        )
    # Then ann's is purge-pending and off's is refused, unchanged
    by_id = {o.membership_id: o for o in outcomes}
    assert by_id[deleted].membership is not None
    assert by_id[deleted].membership.state == "purge-pending"
    assert isinstance(by_id[active].error, TransitionNotAllowed)
    with world.uow() as uow:
        entry = self_service.get_my_organization(uow, world.principal("off"), "open.example")
    assert entry.membership.state == "active"


def test_purging_an_empty_selection_is_refused(world):
    # Given no selection, When gadmin submits it, Then it is invalid input
    with world.uow() as uow, pytest.raises(InvalidInput):
        selection.decide_selected(
            uow, world.clock, world.principal("gadmin"), "open.example", [], "purge"
        )


def test_purging_a_selection_needs_an_admin(world):
    # Given ann soft-deleted in open
    deleted = world.soft_delete("open", "ann", by=world.principal("gadmin"))
    # When pat (no admin role) tries to purge it, Then open is not found and nothing changes
    with world.uow() as uow, pytest.raises(NotFound):
        selection.decide_selected(
            uow, world.clock, world.principal("pat"), "open.example", [deleted], "purge"
        )
    with world.uow() as uow:
        details = timeline.membership_details(
            uow, world.clock, world.principal("gadmin"), "open.example", deleted
        )
    assert details.membership.state == "soft-deleted"
