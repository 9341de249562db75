"""``lifecycle webhooks deliveries`` and ``lifecycle webhooks retry``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from cli import Services, main
from memberships.webhook_delivery import fan_out
from settings import Settings
from store.models import WebhookDelivery
from tests.integration.test_webhook_delivery import add_endpoint, add_event, deliveries

if TYPE_CHECKING:
    from conftest import World


@pytest.fixture
def services(database_url: str, world: World) -> Iterator[Services]:
    found = Services(settings=Settings(database_url=database_url), clock=world.clock)
    yield found
    if "session_factory" in found.__dict__:
        found.session_factory.kw["bind"].dispose()


def test_an_operator_lists_an_endpoints_deliveries_and_retries_a_failed_one(
    services: Services, world: World
) -> None:
    endpoint = add_endpoint(world, "https://crm.example/hook")
    event_id = add_event(world)
    with world.uow() as uow:
        fan_out(uow, world.clock)
    [delivery] = deliveries(world)
    run = CliRunner().invoke
    listed = run(
        main,
        ["webhooks", "deliveries", "--org", "open.example", "--webhook", endpoint, "--json"],
        obj=services,
    )
    assert listed.exit_code == 0, listed.output
    [item] = json.loads(listed.stdout)["items"]
    assert (item["eventId"], item["state"], item["attempts"]) == (event_id, "pending", 0)
    table = run(
        main,
        ["webhooks", "deliveries", "--org", "open.example", "--webhook", endpoint],
        obj=services,
    )
    assert "membership.soft_deleted" in table.stdout and "pending" in table.stdout
    # A delivered one is not sent again; a failed one is
    with world.uow() as uow:
        row = uow.session.get(WebhookDelivery, delivery.id)
        assert row is not None
        row.state = "delivered"
        uow.commit()
    refused = run(main, ["webhooks", "retry", "--org", "open.example", delivery.id], obj=services)
    assert refused.exit_code == 1 and "delivered already" in refused.stderr
    with world.uow() as uow:
        row = uow.session.get(WebhookDelivery, delivery.id)
        assert row is not None
        row.state, row.next_attempt_at = "failed", None
        uow.commit()
    retried = run(main, ["webhooks", "retry", "--org", "open.example", delivery.id], obj=services)
    assert retried.exit_code == 0, retried.output
    assert "sent again now" in retried.stdout
    [after] = deliveries(world)
    assert after.state == "pending" and after.next_attempt_at == world.clock()
    unknown = run(main, ["webhooks", "retry", "--org", "open.example", "nope"], obj=services)
    assert unknown.exit_code == 1 and "not-found" in unknown.stderr
