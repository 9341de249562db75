"""Helpers for the page tests: a visitor who signs in and submits forms like a browser,
CSRF token included (taken from the page the form is on)."""

from __future__ import annotations

import html as entities
import re
from dataclasses import dataclass
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_TAGS = re.compile(r"<[^>]+>")


def csrf_token_of(page: TestResponse) -> str:
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


def text_of(response: TestResponse) -> str:
    """The visible text of a page, whitespace collapsed (what a reader sees)."""
    html = response.get_data(as_text=True)
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    return " ".join(entities.unescape(_TAGS.sub(" ", html)).split())


@dataclass
class Visitor:
    client: FlaskClient

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self.client.get(path, **kwargs)

    def sign_in(self, user_id: str) -> TestResponse:
        """The development sign-in: pick the user on the sign-in page."""
        page = self.get("/sign-in")
        assert page.status_code == 200
        return self.client.post(
            "/sign-in", data={"csrf_token": csrf_token_of(page), "user_id": user_id}
        )

    def submit(
        self, form_page: str, action: str, data: dict[str, Any] | None = None
    ) -> TestResponse:
        """Open ``form_page``, then POST ``data`` to ``action`` with that page's CSRF token."""
        page = self.get(form_page)
        assert page.status_code == 200, page.get_data(as_text=True)
        return self.client.post(action, data={"csrf_token": csrf_token_of(page), **(data or {})})

    def follow(self, response: TestResponse) -> TestResponse:
        assert response.status_code in (302, 303), response.get_data(as_text=True)
        return self.get(response.headers["Location"])
