"""Sending work to the workers: the ``store.unit_of_work.Dispatcher`` web and cli use.

A use case registers a message with ``UnitOfWork.send_after_commit``; after the
commit, the unit of work calls ``send`` here with an actor name from
``memberships`` (``complete_leave``, ``remove_data``) and this maps it to the
message contract in ``workers.messages``. Nothing here imports the actors, so a
web process sends without declaring them.

A failed send raises (Redis down): the unit of work logs it and the sweep
re-drives the work later, because the committed state already says it is due.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from typing import Any

from dramatiq import Broker, Message
from dramatiq.brokers.redis import RedisBroker
from dramatiq.common import current_millis

from settings import Settings
from workers.broker import NAMESPACE, build_broker
from workers.messages import SWEEP, contract_for


def message_for(actor_name: str, membership_id: str, request_id: str | None = None) -> Message[Any]:
    """The message for ``actor_name`` about ``membership_id``, by its contract.

    Raises ``KeyError`` for an actor name with no contract.
    """
    contract = contract_for(actor_name)
    kwargs = {"request_id": request_id} if request_id else {}
    return Message(
        queue_name=contract.queue_name,
        actor_name=contract.actor_name,
        args=(membership_id,),
        kwargs=kwargs,
        options={},
    )


class BrokerDispatcher:
    """Sends messages by actor name through a Dramatiq broker."""

    # store.unit_of_work.send_message passes the request id on when this is set.
    carries_request_id = True

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def send(self, actor_name: str, membership_id: str, request_id: str | None = None) -> None:
        """Enqueue one message now. Raises the broker's error when Redis does not answer."""
        self.broker.enqueue(message_for(actor_name, membership_id, request_id))

    def send_sweep(self, request_id: str | None = None) -> None:
        """Ask a worker to run one sweep (``lifecycle sweep --enqueue``)."""
        kwargs = {"request_id": request_id} if request_id else {}
        self.broker.enqueue(
            Message(
                queue_name=SWEEP.queue_name,
                actor_name=SWEEP.actor_name,
                args=(),
                kwargs=kwargs,
                options={},
            )
        )

    def send_many(
        self, actor_name: str, membership_ids: Sequence[str], request_id: str | None = None
    ) -> None:
        """Enqueue one message per id; on Redis in one pipelined round trip, so a sweep
        batch of thousands costs one network exchange, not thousands."""
        if not isinstance(self.broker, RedisBroker) or len(membership_ids) < 2:
            for membership_id in membership_ids:
                self.send(actor_name, membership_id, request_id)
            return
        _pipelined_enqueue(
            self.broker, [message_for(actor_name, m, request_id) for m in membership_ids]
        )


def _pipelined_enqueue(broker: RedisBroker, messages: Sequence[Message[Any]]) -> None:
    # The same call RedisBroker.enqueue makes (its dispatch script's "enqueue" command,
    # with a fresh redis_message_id per message), queued on a pipeline instead of sent
    # one by one. Enqueue middleware hooks are not run: none of ours has any.
    script = broker.scripts["dispatch"]
    unpack_size = broker._max_unpack_size()
    with broker.client.pipeline(transaction=False) as pipe:
        for message in messages:
            redis_message_id = str(uuid.uuid4())
            encoded = message.copy(options={"redis_message_id": redis_message_id}).encode()
            script(
                keys=[broker.namespace],
                args=[
                    "enqueue",
                    current_millis(),
                    message.queue_name,
                    broker.broker_id,
                    broker.heartbeat_timeout,
                    broker.dead_message_ttl,
                    0,  # no queue maintenance from a sender
                    unpack_size,
                    redis_message_id,
                    encoded,
                ],
                client=pipe,
            )
        pipe.execute()


_dispatchers: dict[tuple[str, str], BrokerDispatcher] = {}
_lock = threading.Lock()


def broker_dispatcher(settings: Settings) -> BrokerDispatcher:
    """The dispatcher for ``settings.redis_url``, one per process (a broker holds a
    connection pool; building one per request would leak them)."""
    key = (settings.redis_url, NAMESPACE)
    with _lock:
        if key not in _dispatchers:
            _dispatchers[key] = BrokerDispatcher(build_broker(settings))
        return _dispatchers[key]
