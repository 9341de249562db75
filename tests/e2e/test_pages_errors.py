"""Errors on the pages are readable HTML pages, never a stack trace; the API keeps its
problem+json. Every page form needs its CSRF token. The operations page is for operators."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from pages_helpers import Visitor, csrf_token_of, text_of

from memberships import admin, reading


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Visitor:
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


def _signed_in(visitor: Visitor, world: Any, user: str) -> Visitor:
    assert visitor.sign_in(world.users[user]).status_code == 303
    return visitor


def _is_error_page(response: Any, status: int) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    text = text_of(response)
    assert f"Error {status}" in text
    assert "Traceback" not in text
    return text


def _form_posts(world: Any) -> list[str]:
    soft = world.membership("open", "ann")
    return [
        "/sign-out",
        "/account/organizations/open.example/leave",
        "/admin/open.example/settings/privacy-profile",
        "/admin/open.example/settings/external-user-leave",
        f"/admin/open.example/deleted-users/{soft}/restore",
        "/admin/open.example/deleted-users/delete-permanently",
        f"/admin/open.example/memberships/{soft}/remove",
    ]


def test_every_page_form_refuses_a_post_without_its_csrf_token(visitor, world):
    # Given gadmin signed in (and ann soft-deleted, so every form could act)
    with world.uow() as uow:
        admin.remove(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            world.membership("open", "ann"),
        )
    _signed_in(visitor, world, "gadmin")
    for path in _form_posts(world):
        # When a form is posted without its CSRF token
        response = visitor.client.post(
            path, data={"allowed": "no", "membership_id": world.membership("open", "ann")}
        )
        # Then it is refused with a readable 400 page
        text = _is_error_page(response, 400)
        assert "did not carry a valid security token" in text, path
    # and nothing changed
    with world.uow() as uow:
        org = reading.get_organization(uow, world.clock, world.principal("gadmin"), "open.example")
        membership = reading.get_membership(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            world.membership("open", "ann"),
        )
    assert org.external_user_leave_allowed is True
    assert membership.state == "soft-deleted"


def test_a_csrf_token_of_another_session_is_refused(visitor, make_app, world):
    # Given a token taken from someone else's session
    other = Visitor(make_app(pages=True, dev_sign_in=True).test_client())
    other.sign_in(world.users["pat"])
    page = other.get("/account/organizations")
    foreign = csrf_token_of(page)
    # When ann's session posts Leave with it
    _signed_in(visitor, world, "ann")
    response = visitor.client.post(
        "/account/organizations/open.example/leave", data={"csrf_token": foreign}
    )
    # Then it is refused, and ann is still a member
    _is_error_page(response, 400)
    assert 'data-testid="org-open.example"' in visitor.get("/account/organizations").get_data(
        as_text=True
    )


def test_an_unknown_page_is_a_404_page_and_an_unknown_api_path_stays_problem_json(visitor, world):
    # Given a signed-in member
    _signed_in(visitor, world, "ann")
    # When a page address does not exist, Then it is a readable 404 page
    _is_error_page(visitor.get("/account/nothing-here"), 404)
    _is_error_page(visitor.get("/admin/nowhere.example/settings"), 404)
    # When an API path does not exist, Then the API still answers problem+json
    api = visitor.get("/v1/nothing-here")
    assert api.status_code == 404
    assert api.mimetype == "application/problem+json"


def test_a_wrong_method_on_a_page_is_a_405_page(visitor):
    # Given the sign-out form, When it is fetched with GET
    response = visitor.get("/sign-out")
    # Then it is a readable 405 page
    _is_error_page(response, 405)


def test_a_decision_the_lifecycle_refuses_is_a_409_page(visitor, world):
    # Given ann was removed from open and then restored
    membership_id = world.membership("open", "ann")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    with world.uow() as uow:
        admin.restore(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    # When an admin presses Restore again (an old page)
    _signed_in(visitor, world, "gadmin")
    response = visitor.submit(
        "/admin/open.example/deleted-users",
        f"/admin/open.example/deleted-users/{membership_id}/restore",
    )
    # Then it is a readable 409 page that says why
    text = _is_error_page(response, 409)
    assert "does not allow 'restore'" in text


def test_an_unexpected_failure_is_a_500_page_without_details(visitor, world, monkeypatch):
    # Given the Organizations use case fails unexpectedly
    from web.pages import account

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("database exploded: secret connection string")

    monkeypatch.setattr(account, "organizations_overview", broken)
    _signed_in(visitor, world, "ann")
    # When the page is opened
    response = visitor.get("/account/organizations")
    # Then it is a readable 500 page that shows nothing of the cause
    text = _is_error_page(response, 500)
    assert "secret connection string" not in text
    assert "RuntimeError" not in text


def test_operators_see_timers_and_queues(visitor, world):
    # Given ann was removed from open, and her retention period has passed unnoticed
    with world.uow() as uow:
        admin.remove(
            uow,
            world.clock,
            world.principal("gadmin"),
            "open.example",
            world.membership("open", "ann"),
        )
    world.clock.advance(timedelta(days=31))
    # When the operator opens Operations
    page = _signed_in(visitor, world, "ops").get("/ops")
    html, text = page.get_data(as_text=True), text_of(page)
    # Then the timers are shown with the memberships by state, and the page refreshes itself
    assert page.status_code == 200
    assert "Memberships by state" in text
    assert 'data-refresh-seconds="5"' in html
    assert "Soft deleted 1" in text
    # and the purge that is due but not started is counted
    assert 'data-testid="overdue-purges">1<' in html
    # and the queues section is there (figures, or why Redis could not be read)
    assert "Queues" in text


def test_operations_need_the_operator_role(visitor, world):
    # Given gadmin, an organization admin but no operator
    # When they open Operations, Then it is a 403 page
    _is_error_page(_signed_in(visitor, world, "gadmin").get("/ops"), 403)
