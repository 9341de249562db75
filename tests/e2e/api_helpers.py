"""Helpers for the HTTP tests: a signed-in caller, tokens, the problem assertion, and a
snapshot of the database to show a refused request changed nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from settings import Settings
from store.models import Base
from web.auth import issue_token

SECRET = "e2e-test-secret-long-enough-for-hs256"
# The pages' session key: a value of its own, never JWT_SECRET's.
SESSION_SECRET = "e2e-session-key-long-enough-to-sign-cookies"
PROBLEM_PREFIX = "tag:membership-lifecycle.example,2026:problem:"


def token_for(user_id: str, ttl: timedelta = timedelta(minutes=10)) -> str:
    return issue_token(user_id, Settings(jwt_secret=SECRET), ttl)


@dataclass
class Caller:
    """A client that sends one user's token (or none) with every request."""

    client: FlaskClient
    headers: dict[str, str] = field(default_factory=dict)

    def _send(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def request(self, method: str, path: str, **kwargs: Any) -> TestResponse:
        return self._send(method, path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> TestResponse:
        return self._send("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> TestResponse:
        return self._send("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> TestResponse:
        return self._send("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> TestResponse:
        return self._send("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> TestResponse:
        return self._send("DELETE", path, **kwargs)


def problem(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    """Assert ``response`` is the problem ``code`` with ``status``; return its body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    body: dict[str, Any] = response.get_json(force=True)
    assert body["type"] == PROBLEM_PREFIX + code, body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    return body


def database_rows(world: Any) -> dict[str, list[str]]:
    """Every row of every table, as text: equal before and after when nothing changed."""
    with world.uow() as uow:
        return {
            table.name: sorted(repr(tuple(row)) for row in uow.session.execute(select(table)))
            for table in Base.metadata.sorted_tables
        }
