"""``lifecycle webhooks list`` and ``lifecycle events tail``, in process, on each backend:
what an organization's endpoints are (never their secrets) and its newest events as the
stored payloads, one JSON line each; an unknown organization is one line and exit 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from cli import Services, main
from memberships import admin, webhook_endpoints
from memberships.principal import SYSTEM
from settings import Settings


@pytest.fixture
def run(database_url: str, world: Any) -> Iterator[Any]:
    services = Services(settings=Settings(database_url=database_url), clock=world.clock)

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(main, list(args), obj=services)

    yield invoke
    if "session_factory" in services.__dict__:
        services.session_factory.kw["bind"].dispose()


def _endpoint(world: Any, **options: Any) -> webhook_endpoints.WebhookEndpointView:
    with world.uow() as uow:
        return webhook_endpoints.create_webhook(
            uow, world.clock, SYSTEM, "open.example", "https://93.184.215.14/hooks", **options
        )


def test_webhooks_list_shows_each_endpoint_and_its_state_but_no_secret(run, world):
    # Given two endpoints of open, one disabled
    first = _endpoint(world, events=["membership.purged"], confirms_removal=True)
    second = _endpoint(world)
    with world.uow() as uow:
        webhook_endpoints.update_webhook(
            uow, world.clock, SYSTEM, "open.example", second.id, {"enabled": False}
        )
    # When they are listed as a table and as JSON
    table = run("webhooks", "list", "--org", "open.example")
    as_json = run("webhooks", "list", "--org", "open.example", "--json")
    # Then both show each endpoint with its state, and neither any secret
    assert table.exit_code == 0 and as_json.exit_code == 0, (table.output, as_json.output)
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["ID", "URL", "STATE"]
    row_of = {line.split()[0]: line for line in lines[1:]}
    assert "enabled" in row_of[first.id] and "membership.purged" in row_of[first.id]
    assert "disabled: Disabled by an admin." in row_of[second.id]
    items = json.loads(as_json.output)["items"]
    assert [(i["id"], i["enabled"], i["confirmsRemoval"]) for i in items] == sorted(
        [(first.id, True, True), (second.id, False, False)]
    )
    assert items[0]["disabledReason"] in (None, "Disabled by an admin.")
    for output in (table.output, as_json.output):
        assert "whsec_" not in output and first.secret not in output


def test_events_tail_prints_the_newest_payloads_as_json_lines(run, world):
    # Given four transitions in open, and one in closed
    gadmin = world.principal("gadmin")
    for user in ("ann", "pat", "off"):
        with world.uow() as uow:
            admin.remove(uow, world.clock, gadmin, "open.example", world.membership("open", user))
    with world.uow() as uow:
        admin.restore(uow, world.clock, gadmin, "open.example", world.membership("open", "ann"))
    with world.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, "closed.example", world.membership("closed", "ann"))
    # When the last two of open are asked for
    result = run("events", "tail", "--org", "open.example", "-n", "2")
    # Then they are the stored payloads, oldest of them first, open's only
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(p["type"], p["data"]["membershipId"]) for p in lines] == [
        ("membership.soft_deleted", world.membership("open", "off")),
        ("membership.restored", world.membership("open", "ann")),
    ]
    everything = run("events", "tail", "--org", "open.example").output.splitlines()
    assert len(everything) == 4


@pytest.mark.parametrize(
    "args",
    [
        ("webhooks", "list", "--org", "nowhere.example"),
        ("events", "tail", "--org", "nowhere.example"),
    ],
)
def test_an_unknown_organization_is_one_line_and_exit_1(run, args):
    result = run(*args)
    assert result.exit_code == 1
    assert result.stderr.startswith("error: not-found") and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_a_bad_count_is_a_usage_error(run):
    result = run("events", "tail", "--org", "open.example", "-n", "0")
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
