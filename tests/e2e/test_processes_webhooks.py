"""Webhook delivery with the real processes: a worker killed with SIGKILL in the middle of
sending, and the broker losing every message, lose no event: each is delivered at least
once (receivers de-duplicate on ``webhook-id``). On Redis, and on RabbitMQ when
``TEST_AMQP_URL`` is set."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import func, select
from test_processes_harness import (
    STACKS,
    Directory,
    Stack,
    broker_url_for,
    private_database,
    redis_server,
    wait_for,
)

from memberships.clock import utc_now
from store.models import Event, WebhookDelivery, WebhookEndpoint
from tests.support.receiver import Reply, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module", params=STACKS)
def backend(request, tmp_path_factory):
    database, broker = request.param
    directory = tmp_path_factory.mktemp(f"webhooks-{database}-{broker}")
    with (
        redis_server(directory) as redis_url,
        private_database(database, directory) as database_url,
    ):
        yield database, database_url, redis_url, broker_url_for(request, broker)


@pytest.fixture
def stack(backend, tmp_path):
    _, database_url, redis_url, broker_url = backend
    running_stack = Stack(
        database_url,
        redis_url,
        tmp_path,
        {"REDRIVE_AFTER": "2s", "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1"},
        broker_url=broker_url,
    )
    running_stack.redis.flushall()
    running_stack.lose_messages()
    yield running_stack
    running_stack.close()


def _events(stack: Stack, organization_id: str, count: int) -> list[str]:
    ids = [f"msg_{uuid.uuid4().hex}" for _ in range(count)]
    now = utc_now()
    with stack.session_factory() as session:
        for event_id in ids:
            payload = {"type": "membership.soft_deleted", "timestamp": now.isoformat(), "data": {}}
            session.add(
                Event(
                    event_id=event_id,
                    type="membership.soft_deleted",
                    organization_id=organization_id,
                    occurred_at=now,
                    payload=json.dumps(payload),
                )
            )
        session.commit()
    return ids


def _delivered(stack: Stack) -> int:
    with stack.session_factory() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(WebhookDelivery)
                .where(WebhookDelivery.state == "delivered")
            )
            or 0
        )


def test_a_killed_worker_and_a_flushed_broker_lose_no_webhook(stack):
    count = 40
    # A receiver slow enough that a kill lands mid-request
    with running([Reply(200)]) as receiver:
        original = receiver.handler()

        class Slow(original):  # type: ignore[misc, valid-type]
            def _answer(self) -> None:
                time.sleep(0.25)
                super()._answer()

            do_POST = _answer  # noqa: N815

        assert receiver.server is not None
        receiver.server.RequestHandlerClass = Slow
        org = Directory(stack)
        now = utc_now()
        with stack.session_factory() as session:
            session.add(
                WebhookEndpoint(
                    organization_id=org.org_id,
                    url=receiver.url(),
                    secret=SECRET,
                    created_at=now,
                    updated_at=now,
                )
            )
            session.commit()
        events = _events(stack, org.org_id, count)
        worker = stack.start_worker()
        stack.start_scheduler()
        # When some deliveries are made and the worker dies at once, mid-request
        wait_for(lambda: len(receiver.received) >= 4, 60, "deliveries to start", stack.logs)
        worker.kill_9()
        # And the broker loses every message it held
        stack.lose_messages()
        assert _delivered(stack) < count, "everything was delivered before the kill"
        # When a new worker starts
        stack.start_worker()
        # Then every event is delivered, at least once each, under its own webhook-id
        wait_for(lambda: _delivered(stack) == count, 150, "every delivery", stack.logs)
        seen = {r.headers["webhook-id"] for r in receiver.received}
    assert seen == set(events)
    with stack.session_factory() as session:
        undispatched = session.scalar(
            select(func.count()).select_from(Event).where(Event.dispatched_at.is_(None))
        )
    assert undispatched == 0
