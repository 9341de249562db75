"""Metrics count known methods and matched routes only; the rate-limit exemptions are
exact paths."""

from __future__ import annotations

import pytest
import redis
from api_helpers import problem
from prometheus_client.parser import text_string_to_metric_families
from test_processes_harness import redis_server

from web.ops import request_labels


@pytest.fixture
def database_url(sqlite_only: str) -> str:
    """Neither rule depends on the database: SQLite only."""
    return sqlite_only


@pytest.fixture(scope="module")
def private_redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("metrics-redis")) as url:
        yield url


@pytest.fixture
def metrics_app(make_app, private_redis_url):
    """An app counting into a Redis of its own, so the series are this test's alone."""
    client = redis.Redis.from_url(private_redis_url)
    client.flushall()
    yield make_app(redis_url=private_redis_url, redis_client=client)
    client.close()


def _request_series(app) -> set[tuple[str, str, str]]:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"])
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "lifecycle_http_requests_total"
    }


@pytest.mark.parametrize(
    ("method", "rule", "labels"),
    [
        ("GET", "/healthz", ("GET", "/healthz")),
        ("DELETE", "/v1/x/<org>", ("DELETE", "/v1/x/<org>")),
        ("QWERTY", None, ("other", "<unmatched>")),
        ("A|B", "/healthz", ("other", "/healthz")),
        ("get", None, ("other", "<unmatched>")),
    ],
)
def test_only_known_methods_and_matched_routes_are_labels(method, rule, labels):
    assert request_labels(method, rule) == labels


def test_made_up_methods_and_paths_add_no_series(metrics_app, world):
    client = metrics_app.test_client()
    # When a scanner sends made-up methods to made-up paths
    for method, path in [
        ("QWERTY", "/healthzX"),
        ("A|B", "/healthz"),
        ("FOO", "/v1/nothing/here"),
        ("GET", "/healthzX"),
        ("GET", "/healthz"),
    ]:
        client.open(path, method=method)
    # Then they are counted under "other" and "<unmatched>", and the labels stay whole
    series = _request_series(metrics_app)
    methods = {m for m, _, _ in series}
    routes = {r for _, r, _ in series}
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert "other" in methods
    assert routes <= {"/healthz", "/metrics", "<unmatched>"}
    assert ("GET", "<unmatched>", "404") in series


def test_a_path_that_starts_like_an_exempt_one_is_rate_limited(make_app, world):
    # Given a limit of 2 requests a minute per caller
    client = make_app(rate_limits_enabled=True, rate_limit="2 per minute").test_client()
    # When an anonymous caller sends three requests to paths that only start like /healthz
    answers = [client.get(path) for path in ("/healthzX", "/healthz/x", "/docsY")]
    # Then the third is refused: only the exact paths are exempt
    assert [a.status_code for a in answers[:2]] == [404, 404]
    problem(answers[2], 429, "rate-limited")


def test_the_exempt_paths_themselves_are_never_limited(make_app):
    client = make_app(rate_limits_enabled=True, rate_limit="1 per minute").test_client()
    for _ in range(3):
        for path in ("/healthz", "/openapi.json", "/docs"):
            assert client.get(path).status_code == 200
