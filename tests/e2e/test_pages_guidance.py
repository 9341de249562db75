"""What the pages tell people before and after a click: why a Leave is not possible and
whom to ask, what an organization did to a membership, what changed lately; the admin's
words (errors, reasons, tombstones, diagram), where each person starts, bulk decisions
with a line per row, and unknown addresses answered by what the client accepts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pages_helpers import Visitor, text_of

from memberships import admin, removal

OPEN = "/admin/open.example"


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Visitor:
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


def _signed_in(visitor: Visitor, world: Any, user: str) -> Visitor:
    assert visitor.sign_in(world.users[user]).status_code == 303
    return visitor


def _remove(world: Any, org: str, user: str) -> str:
    membership_id = world.membership(org, user)
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), world.orgs[org], membership_id)
    return membership_id


def _card(html: str, domain: str) -> str:
    start = html.index(f'data-testid="org-{domain}"')
    ends = [
        e for e in (html.find('class="org card"', start), html.find("</section>", start)) if e > 0
    ]
    return html[start : min(ends)]


def test_a_card_says_why_leaving_is_not_possible_and_whom_to_ask_before_any_click(visitor, world):
    # Given ann, a guest of closed.example, which does not let external users leave
    _signed_in(visitor, world, "ann")
    html = visitor.get("/account/organizations").get_data(as_text=True)
    card = _card(html, "closed.example")
    # Then its card has no Leave, says why, and names the privacy contact, the privacy
    # statement and the organization's admin
    assert "/leave" not in card and ">Leave<" not in card
    assert "does not let external users leave on their own" in card
    assert 'href="mailto:privacy@closed.example"' in card
    assert 'href="https://closed.example/p"' in card
    assert 'href="mailto:cadmin@mail.example"' in card
    # while open.example's card still offers Leave
    assert f"/account/organizations/{world.orgs['open']}/leave" in _card(html, "open.example")


def test_a_disabled_account_is_told_before_any_click_too(visitor, world):
    # Given dis, whose account in open.example is disabled
    _signed_in(visitor, world, "dis")
    card = _card(visitor.get("/account/organizations").get_data(as_text=True), "open.example")
    # Then the card says so, with open's privacy contact and both of its admins
    assert "Your account is disabled" in card and "/leave" not in card
    for email in ("privacy@open.example", "gadmin@mail.example", "idpadmin@mail.example"):
        assert f'href="mailto:{email}"' in card


def test_the_home_organizations_leave_address_says_it_cannot_be_left_and_whom_to_ask(
    visitor, world
):
    # Given ann, whose home is home.example (no privacy profile; no admin)
    _signed_in(visitor, world, "ann")
    page = visitor.get(f"/account/organizations/{world.orgs['home']}/leave")
    text = text_of(page)
    # Then the page is not titled "Leave …?", says it can't be left, and whom to ask
    assert "Leave Home?" not in text
    assert "Home is your home organization" in text
    assert "has not published a contact" in text


def test_a_guest_removed_by_the_admin_is_told_so_not_that_she_left(visitor, world):
    # Given ann, removed from open by its admin
    _remove(world, "open", "ann")
    _signed_in(visitor, world, "ann")
    # When she opens open.example on her Organizations page
    text = text_of(visitor.get("/account/organizations?tenantId=open.example"))
    # Then it says the organization removed her, when, until when it can restore her,
    # and whom to ask; not that she left
    assert "You have left" not in text
    assert "Open removed you on" in text
    assert "The organization can restore it until" in text
    assert "gadmin@mail.example" in text and "privacy@open.example" in text


def test_recent_changes_are_listed_for_30_days(visitor, world):
    # Given ann was removed from open, then her membership deleted permanently (data
    # removal started; once it has finished the tombstone no longer names her, so from then
    # on nothing links her to it — docs/domain.md, Privacy)
    membership_id = _remove(world, "open", "ann")
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    _signed_in(visitor, world, "ann")
    # When she opens Organizations (without ?tenantId=)
    text = text_of(visitor.get("/account/organizations"))
    # Then each change is there, with its date
    assert "Recent changes" in text
    assert "Open removed you." in text
    assert "Open started removing your data" in text
    # And 31 days later they are no longer listed
    world.clock.advance(timedelta(days=31))
    assert "Recent changes" not in text_of(visitor.get("/account/organizations"))


def test_every_field_error_is_shown_at_once_next_to_its_field_in_words(visitor, world):
    # Given the admin of bare, When they save a bad e-mail and a bad URL together
    _signed_in(visitor, world, "bareadmin")
    response = visitor.submit(
        "/admin/bare.example/settings",
        "/admin/bare.example/settings/privacy-profile",
        {"contact_email": "not-an-email", "statement_url": "ftp://bare.example/p"},
    )
    page = visitor.follow(response).get_data(as_text=True)
    # Then both fields are marked, each with a sentence and no field name of the API
    assert 'id="contact_email-error"' in page and 'id="statement_url-error"' in page
    assert page.count('aria-invalid="true"') == 2
    assert "Enter the privacy contact&#39;s e-mail address" in page
    assert "starting with https://" in page
    assert "contactEmail" not in page and "statementUrl" not in page
    # and what was typed is kept
    assert 'value="not-an-email"' in page


def test_the_membership_record_speaks_in_words_and_shows_what_is_true_of_a_tombstone(
    visitor, world
):
    # Given off (account disabled at home) was denied a leave, and ann was purged from open
    with world.uow() as uow:
        from memberships import self_service
        from memberships.errors import LeaveDenied

        with pytest.raises(LeaveDenied):
            self_service.request_leave(uow, world.clock, world.principal("off"), "open.example")
    ann = _remove(world, "open", "ann")
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", ann)
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, ann)
    _signed_in(visitor, world, "gadmin")
    # When the admin opens ann's record
    page = visitor.get(f"{OPEN}/memberships/{ann}")
    text, html = text_of(page), page.get_data(as_text=True)
    # Then it shows a tombstone: no "enabled", no removal deadline, when the data went
    assert "Account in this organization Deleted; only this record" in text
    assert "enabled" not in text.lower().replace("disabled", "")
    assert "Data removed by" not in text and 'data-testid="purged-at"' in html
    # and the lifecycle has no developer words
    for word in (
        "[is_collaboration]",
        "[!is_collaboration]",
        "MembershipLifecycle",
        "purge_due_at",
    ):
        assert word not in html
    assert "(B2B collaboration)" in html
    # and off's refused leave reads as a reason, not a code
    denied = text_of(visitor.get(f"{OPEN}/memberships/{world.membership('open', 'off')}"))
    assert "Asked to leave by the member refused — because the account is disabled" in denied
    assert "(account-disabled)" not in denied


@pytest.mark.parametrize(
    ("user", "lands_on"),
    [("gadmin", "/admin/"), ("ops", "/ops"), ("ann", "/account/organizations")],
)
def test_each_person_starts_where_their_work_is(visitor, world, user, lands_on):
    response = visitor.sign_in(world.users[user])
    assert response.status_code == 303 and response.headers["Location"] == lands_on


def test_an_operator_may_read_a_record_linked_from_operations_but_not_act_on_it(visitor, world):
    # Given ann removed from open (a permanent deletion is due), and the operator
    ann = _remove(world, "open", "ann")
    _signed_in(visitor, world, "ops")
    # When the operator opens Operations, the due deletion links to the record
    ops = visitor.get("/ops").get_data(as_text=True)
    assert f'href="/admin/{world.orgs["open"]}/memberships/{ann}"' in ops
    # Then the record opens, with no Restore or Delete permanently to press
    record = visitor.get(f"/admin/{world.orgs['open']}/memberships/{ann}")
    assert record.status_code == 200
    assert "/restore" not in record.get_data(as_text=True)


def test_bulk_restore_and_bulk_remove_report_each_row(visitor, world):
    # Given ann and off removed from open; dis active
    ann, off = _remove(world, "open", "ann"), _remove(world, "open", "off")
    dis = world.membership("open", "dis")
    _signed_in(visitor, world, "gadmin")
    # When the admin ticks ann, off and (from an old page) dis, and restores them
    response = visitor.submit(
        f"{OPEN}/deleted-users",
        f"{OPEN}/deleted-users/restore",
        {"membership_id": [ann, off, dis]},
    )
    text = text_of(visitor.follow(response))
    # Then each row says what happened to it
    assert "2 of 3 selected restored with their groups and roles." in text
    assert "Done: Ann — Restored" in text and "Done: Off — Restored" in text
    assert "Not done: Dis —" in text
    # When they remove ann and pat from Members, confirming
    pat = world.membership("open", "pat")
    response = visitor.submit(
        f"{OPEN}/memberships",
        f"{OPEN}/memberships/remove",
        {"membership_id": [ann, pat], "confirmed": "yes"},
    )
    text = text_of(visitor.follow(response))
    assert "2 of 2 selected removed." in text


def test_bulk_remove_without_confirmation_shows_who_would_be_removed(visitor, world):
    _signed_in(visitor, world, "gadmin")
    page = visitor.submit(
        f"{OPEN}/memberships",
        f"{OPEN}/memberships/remove",
        {"membership_id": [world.membership("open", "ann")]},
    )
    assert page.status_code == 200
    text = text_of(page)
    assert "Remove the selected guests?" in text and "ann@mail.example" in text


@pytest.mark.parametrize(
    ("accept", "mimetype"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html"),
        ("application/json", "application/problem+json"),
        ("*/*", "application/problem+json"),
    ],
)
def test_an_unknown_address_answers_in_what_the_client_accepts(visitor, accept, mimetype):
    response = visitor.get("/no/such/page", headers={"Accept": accept})
    assert response.status_code == 404 and response.mimetype == mimetype
    if mimetype == "text/html":
        assert "Page not found" in text_of(response)
