"""The operations endpoints over HTTP: ``/v1/ops/queues`` and ``/v1/ops/timers`` for platform
operators only, ``/metrics`` computed at scrape time and right across app processes."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import redis
from api_helpers import Caller, problem, token_for
from dramatiq import Message
from prometheus_client.parser import text_string_to_metric_families
from redis.backoff import NoBackoff
from redis.retry import Retry
from test_processes_harness import free_port, redis_server

from memberships import admin, automatic, self_service
from settings import Settings
from workers.broker import build_broker
from workers.dispatch import BrokerDispatcher


@pytest.fixture(scope="module")
def private_redis_url(tmp_path_factory):
    with redis_server(tmp_path_factory.mktemp("ops-redis")) as url:
        yield url


@pytest.fixture
def private_redis(private_redis_url):
    client = redis.Redis.from_url(private_redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def ops_app(make_app, private_redis_url, private_redis):
    """An app whose broker Redis is the private one (so the counts are ours alone)."""
    return make_app(redis_url=private_redis_url, redis_client=private_redis)


def _caller(app, world, user=None):
    headers = {"Authorization": f"Bearer {token_for(world.users[user])}"} if user else {}
    return Caller(app.test_client(), headers)


def _samples(response):
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }


def test_only_platform_operators_read_the_queues_and_the_timers(ops_app, world):
    # Given an organization admin and the platform operator
    for path in ("/v1/ops/queues", "/v1/ops/timers"):
        # When the admin asks, Then it is forbidden (problem+json), and anonymous is 401
        problem(_caller(ops_app, world, "gadmin").get(path), 403, "forbidden")
        problem(_caller(ops_app, world).get(path), 401, "authentication-required")
        # And the operator gets the report
        assert _caller(ops_app, world, "ops").get(path).status_code == 200


def test_ops_timers_reports_a_known_situation(ops_app, world):
    # Given ann left open (soft-deleted), pat was removed (purge-pending) 31 days ago,
    # and ann is leaving bare (leave-pending)
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("open", "ann"))
    with world.uow() as uow:
        admin.remove(
            uow,
            world.clock,
            world.principal("gadmin"),
            world.orgs["open"],
            world.membership("open", "pat"),
        )
    world.clock.advance(timedelta(days=31))
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "bare.example")
    # When the operator reads the timers
    response = _caller(ops_app, world, "ops").get("/v1/ops/timers?limit=10")
    # Then the numbers and lists are those of the situation, in camelCase
    body = response.get_json()
    assert response.status_code == 200, body
    assert body["byState"]["soft-deleted"] == 1
    assert body["byState"]["purge-pending"] == 1
    assert body["byState"]["leave-pending"] == 1
    assert (body["overduePurges"], body["overdueRemovals"]) == (1, 1)
    assert [e["membershipId"] for e in body["nextDuePurges"]] == [world.membership("open", "ann")]
    assert [e["membershipId"] for e in body["overdueRemovalList"]] == [
        world.membership("open", "pat")
    ]
    assert body["oldestLeavePending"]["membershipId"] == world.membership("bare", "ann")


def test_ops_timers_refuses_a_bad_limit(ops_app, world):
    response = _caller(ops_app, world, "ops").get("/v1/ops/timers?limit=0")
    problem(response, 422, "invalid-input")


def test_ops_queues_reports_a_known_situation(ops_app, world, private_redis_url):
    # Given 3 leaves sent, one taken by a worker, and one dead removal
    broker = build_broker(Settings(redis_url=private_redis_url))
    dispatcher = BrokerDispatcher(broker)
    for i in range(3):
        dispatcher.send("complete_leave", f"m-{i}")
    broker.do_fetch("leaves", 1)
    broker.enqueue(
        Message(queue_name="removals", actor_name="remove_data", args=("x",), kwargs={}, options={})
    )
    [raw] = broker.do_fetch("removals", 1)
    broker.do_nack("removals", Message.decode(raw).options["redis_message_id"])
    broker.close()
    # When the operator reads the queues
    body = _caller(ops_app, world, "ops").get("/v1/ops/queues").get_json()
    # Then each queue says what happened
    queues = {q["name"]: q for q in body["queues"]}
    assert queues["leaves"] == {
        "name": "leaves",
        "ready": 2,
        "delayed": 0,
        "inFlight": 1,
        "deadLetters": 0,
    }
    assert queues["removals"]["deadLetters"] == 1
    assert body["workers"] == []


def test_ops_queues_says_not_ready_when_redis_does_not_answer(make_app, world):
    # Given an app whose Redis is not there
    dead = redis.Redis(
        host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0)
    )
    dead_app = make_app(redis_client=dead, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    # When the operator reads the queues, Then it is a 503 problem, not a crash
    problem(_caller(dead_app, world, "ops").get("/v1/ops/queues"), 503, "not-ready")


def test_metrics_count_the_apps_requests_and_the_transitions(
    make_app, world, private_redis_url, private_redis
):
    # Given an app (several gunicorn workers add up: tests/e2e/test_processes_client.py)
    app = make_app(redis_url=private_redis_url, redis_client=private_redis)
    # When ann's organizations are read three times, and she leaves
    for _ in range(3):
        assert _caller(app, world, "ann").get("/v1/me/organizations").status_code == 200
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    # Then a scrape (no token needed) counts the three requests and the leave
    samples = _samples(app.test_client().get("/metrics"))
    key = (
        "lifecycle_http_requests_total",
        (("method", "GET"), ("route", "/v1/me/organizations"), ("status", "200")),
    )
    assert samples[key] == 3
    assert samples[("lifecycle_transitions_total", (("event", "request_leave"),))] == 1
    assert samples[("lifecycle_memberships", (("state", "leave-pending"),))] == 1
    assert samples[("lifecycle_scrape_source_up", (("source", "database"),))] == 1


def test_removals_waiting_on_apps_are_counted_by_the_timers_the_cli_and_the_metrics(
    ops_app, world, settings
):
    from click.testing import CliRunner

    from cli import Services, main
    from memberships.removal import remove_all_data
    from tests.integration.test_webhook_delivery import add_endpoint

    # Given an app of open that must confirm removals and never does
    add_endpoint(world, "https://crm.example/hook", confirms_removal=True)
    gadmin = world.principal("gadmin")
    # And pat's removal (direct connect) started 31 days ago, her own data all removed
    pat = world.membership("open", "pat")
    with world.uow() as uow:
        admin.remove(uow, world.clock, gadmin, world.orgs["open"], pat)
    with world.uow() as uow:
        assert remove_all_data(uow, world.clock, pat).waiting_on_apps
    world.clock.advance(timedelta(days=31))
    # And ann's removal from open starts now (an admin deletes her permanently)
    ann = world.membership("open", "ann")
    with world.uow() as uow:
        admin.remove(uow, world.clock, gadmin, world.orgs["open"], ann)
    with world.uow() as uow:
        admin.purge(uow, world.clock, gadmin, world.orgs["open"], ann)
    # When the operator reads the timers: two removals wait on the app, pat's is overdue
    body = _caller(ops_app, world, "ops").get("/v1/ops/timers").get_json()
    assert (body["byState"]["purge-pending"], body["byState"].get("purged", 0)) == (2, 0)
    assert (body["waitingOnApps"], body["waitingOnAppsOverdue"]) == (2, 1)
    # And `lifecycle timers` says the same, as JSON and as text
    services = Services(settings=settings, clock=world.clock)
    try:
        as_json = CliRunner().invoke(main, ["timers", "--json"], obj=services)
        as_text = CliRunner().invoke(main, ["timers"], obj=services)
    finally:
        if "session_factory" in services.__dict__:
            services.session_factory.kw["bind"].dispose()
    assert as_json.exit_code == 0, as_json.output
    report = json.loads(as_json.output)
    assert (report["waitingOnApps"], report["waitingOnAppsOverdue"]) == (2, 1)
    assert "removals waiting on apps: 2   of them overdue: 1" in as_text.output
    # And /metrics exports both
    samples = _samples(ops_app.test_client().get("/metrics"))
    assert samples[("lifecycle_removals_waiting_on_apps", ())] == 2
    assert samples[("lifecycle_removals_waiting_on_apps_overdue", ())] == 1
