"""The web process's logs: one ``web.access`` line per request with the route, status,
duration, request id and user agent, never a token, cookie or e-mail; every record logged
during a request carries its request id."""

from __future__ import annotations

import io
import json
import logging

import pytest

from logconfig import ContextFilter, JsonFormatter


@pytest.fixture
def json_log():
    """The root logger's records as the JSON lines a process writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(previous)


def test_one_access_line_per_request_with_the_route_and_no_secrets(api, world, json_log):
    # Given ann, who leaves open.example with a request id, a cookie and her token
    response = api("ann").post(
        "/v1/me/organizations/open.example/leave?email=ann@example.com",
        headers={
            "X-Request-ID": "trace-me-1",
            "User-Agent": "client/2.0",
            "Cookie": "session=s3cr3t-cookie",
        },
    )
    assert response.status_code == 202
    # Then exactly one access line says what was served
    lines = json_log()
    access = [e for e in lines if e["logger"] == "web.access"]
    assert len(access) == 1
    entry = access[0]
    assert entry["message"] == "POST /v1/me/organizations/<org>/leave 202"
    assert {k: entry[k] for k in ("method", "route", "status", "request_id", "user_agent")} == {
        "method": "POST",
        "route": "/v1/me/organizations/<org>/leave",
        "status": 202,
        "request_id": "trace-me-1",
        "user_agent": "client/2.0",
    }
    assert entry["duration_ms"] > 0
    assert entry["membership_id"] == response.get_json()["id"]
    assert entry["organization_id"] == response.get_json()["organizationId"]
    assert {"timestamp", "level", "logger", "message"} <= set(entry)
    # And no line holds the token, the cookie or an e-mail
    text = json.dumps(lines)
    assert "Bearer" not in text and "eyJ" not in text
    assert "s3cr3t-cookie" not in text and "@" not in text


def test_an_unmatched_path_and_a_refused_request_are_logged_too(anonymous, json_log):
    anonymous.get("/no/such/path")
    anonymous.get("/v1/me/organizations")
    access = [e for e in json_log() if e["logger"] == "web.access"]
    assert [(e.get("route"), e["status"]) for e in access] == [
        (None, 404),
        ("/v1/me/organizations", 401),
    ]
    assert access[0]["message"] == "GET <unmatched> 404"
    assert all(e["request_id"] for e in access)
