"""What the web process sends goes through the broker's public ``enqueue`` and so through
its middleware, on Redis and on RabbitMQ (when ``TEST_AMQP_URL`` is set): no message is
written into a broker's private keys behind the middleware's back."""

from __future__ import annotations

from typing import Any

import pytest
from api_helpers import Caller, token_for
from dramatiq import Broker, Message
from dramatiq.middleware import Middleware
from prometheus_client.parser import text_string_to_metric_families
from test_processes_harness import NEEDS_AMQP, TEST_AMQP_URL, broker_url_for, redis_server

from web.services import EXTENSION_KEY
from workers.inspection import broker_queues


class EnqueueRecorder(Middleware):
    """Records every message the broker has enqueued (``after_enqueue``: once per message,
    where ``before_enqueue`` runs once per attempt, and RabbitMQ tries again after
    re-declaring a queue that went away)."""

    def __init__(self) -> None:
        self.seen: list[Message[Any]] = []

    def after_enqueue(self, broker: Broker, message: Message[Any], delay: int | None) -> None:
        self.seen.append(message)


@pytest.fixture(
    params=[
        "redis",
        pytest.param("rabbitmq", marks=pytest.mark.skipif(not TEST_AMQP_URL, reason=NEEDS_AMQP)),
    ]
)
def broker_setting(request, tmp_path):
    """The app's broker settings: a private Redis, or the test run's RabbitMQ vhost."""
    if request.param == "redis":
        with redis_server(tmp_path) as url:
            yield {"redis_url": url}
        return
    yield {"broker_url": broker_url_for(request, "rabbitmq")}


def test_every_message_the_web_process_sends_passes_through_the_enqueue_middleware(
    make_app, world, broker_setting
):
    # Given the web app with its real dispatcher, and a middleware on its broker
    app = make_app(dispatcher=None, **broker_setting)
    services = app.extensions[EXTENSION_KEY]
    broker = services.dispatcher.broker
    recorder = EnqueueRecorder()
    broker.add_middleware(recorder)
    try:
        # When ann leaves over HTTP
        caller = Caller(
            app.test_client(), {"Authorization": f"Bearer {token_for(world.users['ann'])}"}
        )
        assert caller.post("/v1/me/organizations/open.example/leave").status_code == 202
        # And a batch goes out the way the sweep sends one (450 removals, 3 leaves)
        services.dispatcher.send_many("remove_data", [f"r-{i}" for i in range(450)])
        services.dispatcher.send_many("complete_leave", ["l-1", "l-2", "l-3"])
    finally:
        broker.middleware.remove(recorder)
    # Then every message passed the middleware: the leave, three chunks, three leaves
    sent = [(m.actor_name, m.queue_name) for m in recorder.seen]
    assert sent.count(("complete_leave", "leaves")) == 4
    assert sent.count(("remove_data_many", "removals")) == 3
    chunks = [m.args[0] for m in recorder.seen if m.actor_name == "remove_data_many"]
    assert [len(c) for c in chunks] == [200, 200, 50]
    assert sorted(i for c in chunks for i in c) == sorted(f"r-{i}" for i in range(450))
    # And the broker holds exactly those: nothing reached it any other way
    port = broker_queues(services.settings)
    try:
        ready = {q.name: q.ready for q in port.queue_stats(["leaves", "removals"], [])}
    finally:
        port.close()
    assert ready == {"leaves": 4, "removals": 3}
    # And the operators' endpoint and the metrics say the same, naming the broker
    operator = Caller(
        app.test_client(), {"Authorization": f"Bearer {token_for(world.users['ops'])}"}
    )
    body = operator.get("/v1/ops/queues").get_json()
    assert body["broker"] == port.kind
    assert {q["name"]: q["ready"] for q in body["queues"]} == {
        "leaves": 4,
        "removals": 3,
        "timers": 0,
        "mail": 0,
        "webhooks": 0,
    }
    metrics = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(
            app.test_client().get("/metrics").get_data(as_text=True)
        )
        for s in family.samples
    }
    assert metrics[("lifecycle_queue_messages", (("queue", "removals"), ("status", "ready")))] == 3
    assert metrics[("lifecycle_scrape_source_up", (("source", "broker"),))] == 1
