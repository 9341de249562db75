"""``/docs`` in a browser with every other origin blocked: Swagger UI comes from the
service itself (the ``swagger-ui-bundle-v2`` package), so it renders the operations on a
machine without internet access, and runs no inline script."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_the_interactive_docs_list_the_operations_with_all_outside_network_blocked(
    page: Any, live_server: Any, screenshot: Any
) -> None:
    # Given a browser that may reach only the service's own origin
    own = urlsplit(live_server.base_url).netloc
    outside: list[str] = []

    def only_own_origin(route: Any) -> None:
        if urlsplit(route.request.url).netloc == own:
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.context.route("**/*", only_own_origin)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    # When it opens /docs
    page.goto("/docs")
    # Then Swagger UI lists the operations, by tag, from /openapi.json
    expect(page.get_by_role("heading", name="Self-service")).to_be_visible()
    expect(page.get_by_role("heading", name="Organization admin")).to_be_visible()
    leave = page.locator(".opblock", has_text="/v1/me/organizations/{org}/leave")
    expect(leave).to_be_visible()
    expect(leave).to_contain_text("Leave an organization")
    assert page.locator(".opblock").count() >= 20
    screenshot("docs", ours=False)  # Swagger UI's own markup: its axe report is kept, not failed
    # And nothing was asked of another origin, and no script failed
    assert outside == []
    assert errors == []
    # And the page carries no inline script
    assert page.locator("script:not([src])").count() == 0
