"""The member's pages through Flask's test client: sign-in, the Organizations page, Leave."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from api_helpers import token_for
from pages_helpers import Visitor, csrf_token_of, text_of

from memberships import automatic, self_service


@pytest.fixture
def visitor(make_app: Callable[..., Any]) -> Visitor:
    """A browser-like visitor of an app with the development sign-in switched on."""
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


@pytest.fixture
def production_visitor(make_app: Callable[..., Any]) -> Visitor:
    """A visitor of an app without the development sign-in (tokens only)."""
    return Visitor(make_app(pages=True, dev_sign_in=False).test_client())


def _state(world: Any, user: str, org: str) -> str:
    with world.uow() as uow:
        return self_service.get_my_organization(uow, world.principal(user), org).membership.state


def _set_cookie(response: Any) -> str:
    cookies = [v for k, v in response.headers.items() if k.lower() == "set-cookie"]
    assert cookies, "no cookie was set"
    return cookies[-1]


def test_development_sign_in_lists_every_enabled_user_to_pick_from(visitor, world):
    # Given the development sign-in, When the sign-in page is opened
    page = visitor.get("/sign-in")
    # Then every user of the directory is offered, but the one disabled at home
    assert page.status_code == 200
    text = text_of(page)
    for key in world.users:
        assert (f"{key}@mail.example" in text) is (key != "off"), key


def test_signing_in_sets_an_httponly_samesite_lax_session_cookie(visitor, world):
    # Given the sign-in page, When ann is picked
    response = visitor.sign_in(world.users["ann"])
    # Then she lands on her organizations with a session cookie scripts cannot read
    assert response.status_code == 303
    assert response.headers["Location"].endswith("/account/organizations")
    cookie = _set_cookie(response)
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    # and, in development over plain http, it is not Secure (else it would never come back)
    assert "Secure" not in cookie


def test_outside_development_the_session_cookie_is_secure(production_visitor, world):
    # Given no development sign-in, When ann signs in with a token the API accepts
    page = production_visitor.get("/sign-in")
    response = production_visitor.client.post(
        "/sign-in",
        data={"csrf_token": csrf_token_of(page), "token": token_for(world.users["ann"])},
    )
    # Then the session cookie is Secure, HttpOnly and SameSite=Lax
    assert response.status_code == 303
    cookie = _set_cookie(response)
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_outside_development_no_user_list_is_shown_and_picking_a_user_is_refused(
    production_visitor, world
):
    # Given no development sign-in, When the sign-in page is opened
    page = production_visitor.get("/sign-in")
    # Then it asks for a token and lists nobody
    assert "Sign in with an access token" in text_of(page)
    assert "ann@mail.example" not in text_of(page)
    # When someone posts a user id anyway, Then it is a 403 page and no session starts
    refused = production_visitor.client.post(
        "/sign-in", data={"csrf_token": csrf_token_of(page), "user_id": world.users["ann"]}
    )
    assert refused.status_code == 403
    assert refused.mimetype == "text/html"
    assert production_visitor.get("/account/organizations").status_code == 302


def test_a_token_the_api_would_refuse_does_not_sign_in(production_visitor, world):
    # Given an expired token
    expired = token_for(world.users["ann"], ttl=timedelta(seconds=-60))
    page = production_visitor.get("/sign-in")
    # When it is pasted on the sign-in page
    response = production_visitor.client.post(
        "/sign-in", data={"csrf_token": csrf_token_of(page), "token": expired}
    )
    # Then the page says why, and the visitor is still signed out
    again = production_visitor.follow(response)
    assert "The token has expired." in text_of(again)
    assert production_visitor.get("/account/organizations").status_code == 302


def test_a_page_sends_a_signed_out_visitor_to_sign_in_and_back(visitor, world):
    # Given a signed-out visitor, When they open a page
    response = visitor.get("/account/organizations?tenantId=open.example")
    # Then they are sent to sign in, with the way back
    assert response.status_code == 302
    assert "/sign-in?next=" in response.headers["Location"]
    # When they sign in from there, Then they come back to the page they asked for
    page = visitor.get(response.headers["Location"])
    back = visitor.client.post(
        "/sign-in",
        data={
            "csrf_token": csrf_token_of(page),
            "user_id": world.users["ann"],
            "next": "/account/organizations?tenantId=open.example",
        },
    )
    assert back.headers["Location"] == "/account/organizations?tenantId=open.example"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil"])
def test_sign_in_never_redirects_to_another_site(visitor, world, target):
    # Given a sign-in link whose way back points elsewhere
    page = visitor.get("/sign-in")
    # When the user signs in
    response = visitor.client.post(
        "/sign-in",
        data={"csrf_token": csrf_token_of(page), "user_id": world.users["ann"], "next": target},
    )
    # Then they land on their own organizations instead
    assert response.headers["Location"] == "/account/organizations"


def test_home_organization_comes_first_under_its_own_heading_without_leave(visitor, world):
    # Given ann, whose home is home.example and who is a guest of three organizations
    visitor.sign_in(world.users["ann"])
    # When she opens her Organizations page
    page = visitor.get("/account/organizations")
    html = page.get_data(as_text=True)
    # Then the home organization is listed first, under its own heading, with no Leave
    home_at = html.index("Home organization")
    others_at = html.index("Other organizations you collaborate with")
    assert home_at < html.index('data-testid="org-home.example"') < others_at
    home_card = html[html.index('data-testid="org-home.example"') : others_at]
    assert "Leave" not in home_card
    # and every other organization that lets her leave offers Leave
    for domain in ("open.example", "bare.example"):
        card_at = html.index(f'data-testid="org-{domain}"')
        assert card_at > others_at
        assert f"/account/organizations/{world.orgs[domain.split('.')[0]]}/leave" in html
    # while closed.example, which does not, says so on its card and offers no Leave
    assert f"/account/organizations/{world.orgs['closed']}/leave" not in html
    assert 'data-testid="cannot-leave-closed.example"' in html


def test_a_user_without_home_organization_sees_one_organizations_heading(visitor, world):
    # Given pat, a personal account with no home organization
    visitor.sign_in(world.users["pat"])
    # When pat opens the Organizations page
    text = text_of(visitor.get("/account/organizations"))
    # Then there is a single "Organizations" heading and no home section
    assert "Home organization" not in text
    assert "Other organizations you collaborate with" not in text
    assert "Open" in text and "Leave" in text


def test_the_home_organization_has_no_leave_confirmation_either(visitor, world):
    # Given ann, When she opens the leave confirmation of her home organization by hand
    visitor.sign_in(world.users["ann"])
    page = visitor.get("/account/organizations/home.example/leave")
    # Then it says the home organization can't be left, whom to contact, and offers no
    # Leave form
    assert page.status_code == 200
    assert "Home is your home organization" in text_of(page)
    assert "you can't leave it, only its admin can remove your account" in text_of(page)
    assert "Whom to contact" in text_of(page)
    assert 'action="/account/organizations/' not in page.get_data(as_text=True)


def test_leave_is_confirmed_then_the_membership_is_shown_leaving_then_gone(visitor, world):
    # Given ann signed in, When she opens Leave for open.example (no scripts: a page)
    visitor.sign_in(world.users["ann"])
    confirm_path = f"/account/organizations/{world.orgs['open']}/leave"
    confirmation = visitor.get(confirm_path)
    # Then she is asked to confirm, and nothing has changed yet
    assert "Leave Open?" in text_of(confirmation)
    assert _state(world, "ann", "open.example") == "active"
    # When she confirms
    response = visitor.submit(confirm_path, confirm_path)
    # Then the page shows the membership leaving
    page = visitor.follow(response)
    text = text_of(page)
    assert "Your request to leave was accepted." in text
    assert "Leaving Open" in text
    # When the service carries the leave out
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("open", "ann"))
    # Then the organization is gone from her list, and the page says she has left
    after = visitor.get(f"/account/organizations?tenantId={world.orgs['open']}")
    assert 'data-testid="org-open.example"' not in after.get_data(as_text=True)
    assert "You have left Open" in text_of(after)


def test_refused_leave_shows_the_contact_email_and_privacy_statement(visitor, world):
    # Given closed.example does not let external users leave
    visitor.sign_in(world.users["ann"])
    path = "/account/organizations/closed.example/leave"
    # When ann confirms Leave
    page = visitor.follow(visitor.submit(path, path))
    html = page.get_data(as_text=True)
    # Then she is told to contact the admin or privacy contact, with both contacts linked
    assert "Contact the organization's admin or privacy contact" in text_of(page)
    assert 'href="mailto:privacy@closed.example"' in html
    assert 'href="https://closed.example/p"' in html
    # and the membership is unchanged, still listed
    assert 'data-testid="org-closed.example"' in html
    assert _state(world, "ann", "closed.example") == "active"


def test_tenant_id_opens_one_organization_by_domain_or_id(visitor, world):
    # Given ann signed in
    visitor.sign_in(world.users["ann"])
    # When she opens the page with tenantId as a domain and as an id
    by_domain = text_of(visitor.get("/account/organizations?tenantId=bare.example"))
    by_id = text_of(visitor.get(f"/account/organizations?tenantId={world.orgs['bare']}"))
    # Then both open the same organization
    assert "Bare" in by_domain and "bare.example" in by_domain
    assert "Guest (B2B collaboration) · bare.example" in by_id


def test_tenant_id_of_an_organization_the_user_is_not_in_says_so(visitor, world):
    # Given pat is not a member of closed.example
    visitor.sign_in(world.users["pat"])
    # When pat opens it with tenantId
    page = visitor.get("/account/organizations?tenantId=closed.example")
    # Then the page says pat is not a member (and shows nothing of it)
    assert page.status_code == 200
    assert "You are not a member of closed.example" in text_of(page)


def test_signing_out_ends_the_session(visitor, world):
    # Given ann signed in
    visitor.sign_in(world.users["ann"])
    # When she signs out from a page's form
    response = visitor.submit("/account/organizations", "/sign-out")
    # Then pages send her to sign in again
    assert response.status_code == 303
    assert visitor.get("/account/organizations").status_code == 302
