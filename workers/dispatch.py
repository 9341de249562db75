"""Sending work to the workers: the ``store.unit_of_work.Dispatcher`` web and cli use.

A use case registers a message with ``UnitOfWork.send_after_commit``; after the
commit, the unit of work calls ``send`` here with an actor name from
``memberships`` (``complete_leave``, ``remove_data``) and this maps it to the
message contract in ``workers.messages``. Nothing here imports the actors, so a
web process sends without declaring them.

Every message goes through the broker's public ``enqueue``, so its middleware
sees each one and any broker works. ``remove_data`` for many memberships is packed
into ``remove_data_many`` messages of ``removal_chunk_size`` ids each, so a worker
erases a whole chunk per transaction instead of one membership per message.

A failed send raises (the broker is down): the unit of work logs it and the sweep
re-drives the work later, because the committed state already says it is due.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from dramatiq import Broker, Message

from settings import Settings
from workers.broker import NAMESPACE, build_broker
from workers.messages import CHUNKED, SWEEP, contract_for

DEFAULT_REMOVAL_CHUNK_SIZE = Settings().removal_chunk_size


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

    def __init__(
        self, broker: Broker, removal_chunk_size: int = DEFAULT_REMOVAL_CHUNK_SIZE
    ) -> None:
        self.broker = broker
        self.removal_chunk_size = removal_chunk_size

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
        """Enqueue the work for every id, each message through ``broker.enqueue`` (so the
        broker's middleware sees every one, on Redis and RabbitMQ alike).

        An actor with a chunked form (``remove_data`` → ``remove_data_many``) gets one
        message per ``removal_chunk_size`` ids; any other, one message per id.
        """
        chunked = CHUNKED.get(actor_name)
        if chunked is not None:
            size = self.removal_chunk_size
            ids = list(membership_ids)
            contract = chunked
            args: list[tuple[Any, ...]] = [(ids[i : i + size],) for i in range(0, len(ids), size)]
        else:
            contract = contract_for(actor_name)
            args = [(membership_id,) for membership_id in membership_ids]
        kwargs = {"request_id": request_id} if request_id else {}
        for one in args:
            self.broker.enqueue(
                Message(
                    queue_name=contract.queue_name,
                    actor_name=contract.actor_name,
                    args=one,
                    kwargs=kwargs,
                    options={},
                )
            )


_dispatchers: dict[tuple[str, str], BrokerDispatcher] = {}
_lock = threading.Lock()


def broker_dispatcher(settings: Settings) -> BrokerDispatcher:
    """The dispatcher for ``settings.broker``, one per process (a broker holds a
    connection pool; building one per request would leak them)."""
    key = (settings.broker, NAMESPACE)
    with _lock:
        if key not in _dispatchers:
            _dispatchers[key] = BrokerDispatcher(
                build_broker(settings), removal_chunk_size=settings.removal_chunk_size
            )
        return _dispatchers[key]
