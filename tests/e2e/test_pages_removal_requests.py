"""Removal requests on the pages, through Flask's test client: the member asks from the
card of an organization that does not let her leave, and reads where it stands; the
organization's admin approves or declines on *Removal requests*, the decline's reason
required with the error next to its field."""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pages_helpers import Visitor, text_of
from sqlalchemy import select

from memberships.sweep import sweep
from store.models import Membership, RemovalRequest

ORGS = "/account/organizations"
ADMIN = "/admin/closed.example/removal-requests"


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Visitor:
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


def _requests(world: Any) -> list[RemovalRequest]:
    with world.uow() as uow:
        rows = list(uow.session.scalars(select(RemovalRequest).order_by(RemovalRequest.created_at)))
        uow.session.expunge_all()
        return rows


def _card(page: Any, domain: str) -> str:
    html = page.get_data(as_text=True)
    # The card runs to the next card or the end of its list.
    match = re.search(
        rf'data-testid="org-{re.escape(domain)}".*?(?=data-testid="org-|</section>)', html, re.S
    )
    assert match, f"no card for {domain}"
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", match.group(0))).split())


def _ask(visitor: Visitor, world: Any, message: str = "") -> Any:
    visitor.sign_in(world.users["ann"])
    return visitor.submit(
        ORGS, "/account/organizations/closed.example/removal-requests", {"message": message}
    )


def test_the_card_of_an_organization_that_refuses_a_leave_offers_to_ask(visitor, world):
    # Given ann signed in: closed does not let her leave, open does
    visitor.sign_in(world.users["ann"])
    page = visitor.get(ORGS)
    # Then closed's card offers the request, with a labelled message field
    assert "Ask Closed to remove me" in _card(page, "closed.example")
    assert '<label for="message-' + world.orgs["closed"] + '"' in page.get_data(as_text=True)
    # and a card she may simply leave does not
    assert "to remove me" not in _card(page, "open.example")
    # When she asks, with a message
    response = _ask(visitor, world, "I left the project in June.")
    # Then the page says it was sent and the card says when the answer is due
    page = visitor.follow(response)
    assert "Your request was sent to Closed" in text_of(page)
    due = world.clock() + timedelta(days=30)
    card = _card(page, "closed.example")
    assert f"Requested on {world.clock().day} {world.clock():%b %Y}" in card
    assert f"answer due by {due.day} {due:%b %Y}" in card
    assert "Ask Closed to remove me" not in card
    [row] = _requests(world)
    assert (row.status, row.message) == ("open", "I left the project in June.")


def test_a_second_ask_is_refused_with_a_message(visitor, world):
    _ask(visitor, world)
    response = visitor.client.post(
        "/account/organizations/closed.example/removal-requests",
        data={"csrf_token": _token(visitor)},
    )
    assert "already asked Closed" in text_of(visitor.follow(response))
    assert len(_requests(world)) == 1


def _token(visitor: Visitor) -> str:
    from pages_helpers import csrf_token_of

    return csrf_token_of(visitor.get(ORGS))


def test_the_admin_declines_with_a_required_reason_and_the_member_reads_it(visitor, world):
    _ask(visitor, world, "Please")
    [request] = _requests(world)
    # Given closed's admin on Removal requests (linked from the organization's tabs)
    visitor.sign_in(world.users["cadmin"])
    settings_page = visitor.get("/admin/closed.example/settings")
    assert f'href="{ADMIN}"' in settings_page.get_data(as_text=True)
    page = visitor.get(ADMIN)
    assert page.status_code == 200
    assert "Ann" in text_of(page) and "Please" in text_of(page)
    # When the admin declines without a reason
    refused = visitor.submit(ADMIN, f"{ADMIN}/{request.id}/decline", {"reason": "  "})
    # Then the error is next to that request's reason field, and nothing changed
    page = visitor.follow(refused)
    html = page.get_data(as_text=True)
    assert f'id="reason-{request.id}-error"' in html
    assert f'aria-describedby="reason-{request.id}-error"' in html
    assert "Say why the request is declined" in text_of(page)
    assert _requests(world)[0].status == "open"
    # When the admin gives one
    done = visitor.submit(ADMIN, f"{ADMIN}/{request.id}/decline", {"reason": "Contract runs."})
    assert "Request declined" in text_of(visitor.follow(done))
    # Then ann reads it on her card, and may ask again
    visitor.sign_in(world.users["ann"])
    card = _card(visitor.get(ORGS), "closed.example")
    assert "Closed declined your request" in card and "Contract runs." in card
    assert "Ask Closed to remove me" in card


def test_the_admin_approves_and_the_member_is_removed(visitor, world):
    _ask(visitor, world)
    [request] = _requests(world)
    visitor.sign_in(world.users["cadmin"])
    done = visitor.submit(ADMIN, f"{ADMIN}/{request.id}/approve")
    assert "moved to Deleted users" in text_of(visitor.follow(done))
    with world.uow() as uow:
        state = uow.session.get(Membership, world.membership("closed", "ann")).state  # type: ignore[union-attr]
    assert state == "soft-deleted"
    # and ann reads that Closed approved and removed her
    visitor.sign_in(world.users["ann"])
    text = text_of(visitor.get(ORGS))
    assert "Closed approved it" in text and "removed you" in text


def test_the_admin_list_shows_overdue_requests_first_and_marked(visitor, world):
    _ask(visitor, world)
    world.clock.advance(timedelta(days=31))
    with world.uow() as uow:
        sweep(uow, world.clock)
    visitor.sign_in(world.users["cadmin"])
    page = visitor.get(ADMIN)
    assert "request--overdue" in page.get_data(as_text=True)
    assert "Overdue" in text_of(page)
    # and the member's card says the organization has not answered in time
    visitor.sign_in(world.users["ann"])
    assert "has not answered in time" in _card(visitor.get(ORGS), "closed.example")


def test_another_organizations_admin_gets_the_not_found_page(visitor, world):
    visitor.sign_in(world.users["gadmin"])
    assert visitor.get(ADMIN).status_code == 404


# ---- with a short deadline (REMOVAL_REQUEST_DEADLINE one hour): overdue by the sweep ---------

SHORT = timedelta(hours=1)
OPEN_ADMIN = "/admin/open.example/removal-requests"


@pytest.fixture
def hurried(settings, session_factory, clock, dispatcher, rate_limit_prefix) -> Visitor:
    """The pages of an app whose organizations must answer within an hour."""
    from dataclasses import replace

    from web import create_app

    app = create_app(
        replace(settings, removal_request_deadline=SHORT),
        session_factory=session_factory,
        clock=clock,
        dispatcher=dispatcher,
        rate_limit_key_prefix=rate_limit_prefix,
        pages=True,
        dev_sign_in=True,
    )
    return Visitor(app.test_client())


def _forbid_leaving_open(world: Any) -> None:
    from store.models import Organization

    with world.uow() as uow:
        org = uow.session.get(Organization, world.orgs["open"])
        assert org is not None
        org.external_user_leave_allowed = False
        uow.commit()


def _order_on(page: Any, ids: list[str]) -> list[str]:
    html = page.get_data(as_text=True)
    return sorted(ids, key=lambda i: html.index(f'data-testid="request-{i}"'))


def test_past_a_short_deadline_the_sweep_marks_a_request_overdue_and_it_leads_the_list(
    hurried, world
):
    # Given open.example no longer lets guests leave; pat asks, then ann 40 minutes later
    _forbid_leaving_open(world)
    asked = []
    for user in ("pat", "ann"):
        hurried.sign_in(world.users[user])
        response = hurried.submit(ORGS, "/account/organizations/open.example/removal-requests")
        assert "Your request was sent to Open" in text_of(hurried.follow(response))
        asked.append(_requests(world)[-1].id)
        world.clock.advance(timedelta(minutes=40))
    # When 40 more minutes pass (pat's hour is over, ann's is not) and the sweep runs
    with world.uow() as uow:
        assert sweep(uow, world.clock).overdue_requests_marked == 1
    assert [r.overdue_at is not None for r in _requests(world)] == [True, False]
    # Then open's admin sees pat's first, marked overdue, then ann's
    hurried.sign_in(world.users["gadmin"])
    page = hurried.get(OPEN_ADMIN)
    assert _order_on(page, asked) == asked
    html = page.get_data(as_text=True)
    starts = [html.rindex("<li", 0, html.index(f'data-testid="request-{i}"')) for i in asked]
    first, second = html[starts[0] : starts[1]], html[starts[1] :]
    assert "request--overdue" in first and "Overdue" in first
    assert "request--overdue" not in second and "Overdue</span>" not in second
    # and pat reads that open has not answered in time
    hurried.sign_in(world.users["pat"])
    assert "has not answered in time" in _card(hurried.get(ORGS), "open.example")


def test_a_request_ends_when_the_admin_removes_the_member_and_the_member_reads_why(visitor, world):
    # Given ann's open request to closed.example
    _ask(visitor, world)
    [request] = _requests(world)
    membership_id = world.membership("closed", "ann")
    # When closed's admin removes her from her membership's page, not through the request
    visitor.sign_in(world.users["cadmin"])
    page = f"/admin/closed.example/memberships/{membership_id}"
    done = visitor.submit(page, f"{page}/remove", {"confirmed": "yes"})
    assert "moved to Deleted users" in text_of(visitor.follow(done))
    # Then the request is closed, no longer among the open ones on the admin's list
    assert (_requests(world)[0].status, _requests(world)[0].closed_reason) == (
        "closed",
        "removed-by-organization",
    )
    assert "There are no removal requests in this list" in text_of(
        visitor.get(f"{ADMIN}?status=open")
    )
    # and ann reads why on her Organizations page: removed, and her request closed by it
    visitor.sign_in(world.users["ann"])
    text = text_of(visitor.get(ORGS))
    assert "Closed on" in text and "Closed removed you from the organization." in text
    assert "Your request to be removed from Closed was closed" in text
    assert request.id not in text  # ids are not for people
