"""The HTTP contract around the operations: errors, request ids, rate limits, health, OpenAPI."""

from __future__ import annotations

import socket
import time

from api_helpers import problem
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from memberships import self_service


def test_an_unknown_route_is_a_404_problem(anonymous):
    problem(anonymous.get("/v1/nothing-here"), 404, "not-found")
    problem(anonymous.get("/nowhere"), 404, "not-found")


def test_a_wrong_method_is_a_405_problem_with_allow(api):
    response = api("ann").put("/v1/me/organizations")
    problem(response, 405, "method-not-allowed")
    assert "GET" in response.headers["Allow"]


def test_a_body_over_64_kib_is_refused(api):
    response = api("gadmin").put(
        "/v1/organizations/open.example/privacy-profile",
        data="x" * (65 * 1024),
        content_type="application/json",
    )
    problem(response, 413, "payload-too-large")


def test_an_unexpected_failure_is_a_500_problem_without_internals(api, monkeypatch):
    # Given a use case fails with an error nobody planned for
    def broken(*args, **kwargs):
        raise RuntimeError("connection string postgresql://secret@db")

    monkeypatch.setattr(self_service, "list_organizations", broken)
    # When it is called over HTTP
    response = api("ann").get("/v1/me/organizations", headers={"X-Request-ID": "boom-1"})
    # Then 500 internal-error naming the request id, and nothing of the cause
    body = problem(response, 500, "internal-error")
    assert body["requestId"] == "boom-1"
    text = response.get_data(as_text=True)
    for internal in ("secret", "RuntimeError", "Traceback", "postgresql"):
        assert internal not in text


def test_a_request_id_is_echoed_when_sane_and_generated_otherwise(api):
    given = api("ann").get("/v1/me/organizations", headers={"X-Request-ID": "abc-123"})
    assert given.headers["X-Request-ID"] == "abc-123"
    generated = api("ann").get("/v1/me/organizations")
    assert len(generated.headers["X-Request-ID"]) == 32
    for insane in ("has spaces", "x" * 65, 'quote"d'):
        replaced = api("ann").get("/v1/me/organizations", headers={"X-Request-ID": insane})
        assert replaced.headers["X-Request-ID"] not in (insane, "")


def test_a_caller_over_the_rate_limit_gets_429_with_retry_after(make_app, world):
    # Given an app that allows 2 requests a minute per caller
    client = make_app(rate_limits_enabled=True, rate_limit="2 per minute").test_client()
    from api_helpers import Caller, token_for

    ann = Caller(client, {"Authorization": f"Bearer {token_for(world.users['ann'])}"})
    pat = Caller(client, {"Authorization": f"Bearer {token_for(world.users['pat'])}"})
    # When ann sends a third request within the minute
    assert [ann.get("/v1/me/organizations").status_code for _ in range(2)] == [200, 200]
    response = ann.get("/v1/me/organizations")
    # Then 429 rate-limited, saying when to retry
    problem(response, 429, "rate-limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    # And other callers and the health checks are not affected
    assert pat.get("/v1/me/organizations").status_code == 200
    assert client.get("/healthz").status_code == 200


def test_rate_limits_can_be_switched_off(make_app, world):
    client = make_app(rate_limits_enabled=False, rate_limit="1 per minute").test_client()
    from api_helpers import token_for

    headers = {"Authorization": f"Bearer {token_for(world.users['ann'])}"}
    codes = {client.get("/v1/me/organizations", headers=headers).status_code for _ in range(3)}
    assert codes == {200}


def test_healthz_answers_without_a_token(anonymous):
    response = anonymous.get("/healthz")
    assert (response.status_code, response.get_json()) == (200, {"status": "ok"})


def test_readyz_checks_the_database_and_redis(anonymous):
    response = anonymous.get("/readyz")
    assert response.status_code == 200
    assert response.get_json() == {
        "status": "ready",
        "checks": {"database": "ok", "redis": "ok"},
    }


def test_readyz_is_503_when_redis_is_unreachable(make_app):
    client = make_app(redis_url="redis://127.0.0.1:1/0").test_client()
    body = problem(client.get("/readyz"), 503, "not-ready")
    assert body["checks"] == {"database": "ok", "redis": "unreachable"}


def test_readyz_gives_up_on_a_redis_that_hangs_within_seconds(make_app):
    # Given a Redis address that accepts connections and never answers
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        port = silent.getsockname()[1]
        client = make_app(redis_url=f"redis://127.0.0.1:{port}/0").test_client()
        # When the readiness probe asks
        started = time.monotonic()
        body = problem(client.get("/readyz"), 503, "not-ready")
        # Then it reports Redis within its timeouts and one quick retry, not after redis-py's
        # multi-second backoff
        assert body["checks"]["redis"] == "unreachable"
        assert time.monotonic() - started < 4


def test_readyz_is_503_when_the_database_is_unreachable(make_app):
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    client = make_app(session_factory=sessionmaker(bind=engine)).test_client()
    body = problem(client.get("/readyz"), 503, "not-ready")
    assert body["checks"] == {"database": "unreachable", "redis": "ok"}
    engine.dispose()


# The operations a connected app calls with a single-use capability URL
# (docs/webhooks.md, "Connected apps confirm removal"): the only /v1/ ones without bearer auth.
CAPABILITY_URLS = {("/v1/removal-confirmations/{token}", "post")}


def test_the_openapi_document_describes_every_operation_with_problems_and_bearer_auth(
    anonymous,
):
    spec = anonymous.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.1")
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]
    api_operations = {(path, method) for path, method, _ in operations}
    assert {
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/v1/me/organizations", "get"),
        ("/v1/me/organizations/{org}", "get"),
        ("/v1/me/organizations/{org}/leave", "post"),
        ("/v1/organizations/{org}", "get"),
        ("/v1/organizations/{org}/privacy-profile", "put"),
        ("/v1/organizations/{org}/settings/external-collaboration", "get"),
        ("/v1/organizations/{org}/settings/external-collaboration", "patch"),
        ("/v1/organizations/{org}/memberships", "get"),
        ("/v1/organizations/{org}/memberships/{membership_id}", "get"),
        ("/v1/organizations/{org}/memberships/{membership_id}", "delete"),
        ("/v1/organizations/{org}/memberships/{membership_id}/history", "get"),
        ("/v1/organizations/{org}/deleted-users", "get"),
        ("/v1/organizations/{org}/deleted-users/{membership_id}", "delete"),
        ("/v1/organizations/{org}/deleted-users/{membership_id}/restore", "post"),
        ("/v1/organizations/{org}/audit-events", "get"),
        ("/v1/organizations/{org}/guests", "post"),
    } <= api_operations
    for path, method, operation in operations:
        responses = operation["responses"]
        if (path, method) in CAPABILITY_URLS:
            # The unguessable token in the path is the credential: no bearer token
            assert operation["security"] == [], (path, method)
            assert "404" in responses and "429" in responses
        elif path.startswith("/v1/"):
            assert operation["security"] == [{"bearerAuth": []}], (path, method)
            assert "401" in responses and "429" in responses
        for status, response in responses.items():
            if int(status) >= 400:
                assert list(response["content"]) == ["application/problem+json"], (path, status)
    leave = spec["paths"]["/v1/me/organizations/{org}/leave"]["post"]["responses"]
    assert {"202", "403", "404", "409"} <= set(leave)


def test_interactive_docs_are_served(anonymous):
    response = anonymous.get("/docs")
    assert response.status_code == 200
    assert "openapi.json" in response.get_data(as_text=True)


def test_the_api_keeps_serving_when_the_rate_limit_store_is_down(make_app, world):
    # Given rate limits are on but their Redis does not answer
    client = make_app(rate_limits_enabled=True, redis_url="redis://127.0.0.1:1/0").test_client()
    from api_helpers import token_for

    headers = {"Authorization": f"Bearer {token_for(world.users['ann'])}"}
    # Then requests are still served (and /readyz reports Redis)
    assert client.get("/v1/me/organizations", headers=headers).status_code == 200
    assert client.get("/readyz").status_code == 503


def test_every_error_code_is_documented_with_its_status():
    # Every code the edge maps, and every code of the domain's error classes, has its row
    from pathlib import Path

    from memberships.errors import ALL_ERRORS
    from memberships.idempotency import IdempotencyKeyInUse, IdempotencyKeyReused
    from web.errors import STATUS, status_of

    rows = {}
    doc = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
    for line in doc.read_text().splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 3 and cells[0].startswith("`") and cells[1].isdigit():
            rows[cells[0].strip("`")] = int(cells[1])
    assert rows == STATUS
    for error_class in (*ALL_ERRORS, IdempotencyKeyReused, IdempotencyKeyInUse):
        assert rows[error_class.code] == status_of(error_class("x"))
