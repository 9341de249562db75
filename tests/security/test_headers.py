"""Security headers on every response: pages, their errors, the API, its errors, /docs."""

from __future__ import annotations

import pytest
from pages_helpers import Visitor

from web.headers import DATA_POLICY, DOCS_POLICY, PAGE_POLICY

COMMON = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _directives(policy: str) -> dict[str, str]:
    return {
        part.split()[0]: " ".join(part.split()[1:])
        for part in (p.strip() for p in policy.split(";"))
        if part
    }


def _assert_secured(response, policy: str) -> None:
    for name, value in COMMON.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    assert response.headers.get("Content-Security-Policy") == policy


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    """Headers do not depend on the database: SQLite only."""
    return sqlite_only


@pytest.fixture
def visitor(make_app, world) -> Visitor:
    return Visitor(make_app(pages=True, dev_sign_in=True).test_client())


def test_the_page_policy_allows_only_the_services_own_scripts_and_styles():
    directives = _directives(PAGE_POLICY)
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in PAGE_POLICY


@pytest.mark.parametrize(
    "path",
    [
        "/sign-in",
        "/account/organizations",
        "/admin/open.example/memberships",
        "/admin/open.example/settings",
        "/admin/open.example/deleted-users",
        "/admin/no-such.example/memberships",
        "/account/no-such-page",
    ],
)
def test_every_page_carries_the_security_headers(visitor, world, path):
    visitor.sign_in(world.users["gadmin"])
    response = visitor.get(path, headers={"Accept": "text/html"})
    assert response.mimetype == "text/html"
    _assert_secured(response, PAGE_POLICY)


def test_a_redirect_to_sign_in_carries_them_too(visitor):
    _assert_secured(visitor.get("/account/organizations"), PAGE_POLICY)


def test_the_pages_hold_no_inline_script_or_style(visitor, world):
    # What the policy refuses must not be needed: every script and style is a file.
    visitor.sign_in(world.users["gadmin"])
    membership = world.membership("open", "ann")
    for path in (
        "/account/organizations",
        "/admin/open.example/memberships",
        f"/admin/open.example/memberships/{membership}",
        "/admin/open.example/deleted-users",
    ):
        html = visitor.get(path).get_data(as_text=True)
        assert "<style" not in html
        assert " style=" not in html
        for tag in html.split("<script")[1:]:
            assert tag.lstrip().startswith("src="), tag[:80]


@pytest.mark.parametrize(
    "path", ["/v1/me/organizations", "/v1/organizations/open.example", "/healthz", "/openapi.json"]
)
def test_api_answers_carry_them(api, path):
    response = api("gadmin").get(path)
    assert response.status_code == 200
    _assert_secured(response, DATA_POLICY)


def test_api_problems_carry_them(anonymous):
    response = anonymous.get("/v1/me/organizations")
    assert response.status_code == 401
    _assert_secured(response, DATA_POLICY)


def test_the_api_document_page_has_a_policy_of_its_own(anonymous):
    response = anonymous.get("/docs")
    assert response.status_code == 200
    _assert_secured(response, DOCS_POLICY)
    directives = _directives(DOCS_POLICY)
    # Swagger UI's files come from this origin (web/docs.py), started by a file, not inline
    assert "<script>" not in response.get_data(as_text=True)
    assert directives["script-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "http" not in DOCS_POLICY  # no other origin


def test_static_files_carry_them(visitor):
    response = visitor.get("/static/pages/pages.js")
    assert response.status_code == 200
    _assert_secured(response, DATA_POLICY)
    response.close()
