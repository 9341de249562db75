"""The operators' view of the queues, whichever broker runs: a small port.

Dramatiq has no API for what operators need (how many messages wait, are delayed, are
being worked on or were given up on; listing, retrying and purging dead letters), so
each broker gets a module that reads it the broker's own way:

- ``workers.queues_redis``    Dramatiq's Redis keys (``<ns>:<q>``, ``<ns>:<q>.msgs``, …);
- ``workers.queues_rabbitmq`` the queues ``<q>``, ``<q>.DQ`` and ``<q>.XQ``, declared
  passively for their counts.

Both answer ``BrokerQueues``; ``broker_queues(settings)`` picks the one for
``settings.broker``. Live workers come from the database (``workers.heartbeats``), so
``queues_report`` says the same on either broker. A broker that does not answer raises
``BrokerUnavailable``. Everything is read-only except retrying and purging dead letters,
which operators run on purpose; a retried dead letter is sent again through the broker's
public ``enqueue``, so the broker's middleware sees it like any other message.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from dramatiq import Broker, Message
from sqlalchemy.orm import Session, sessionmaker

from settings import Settings
from workers.broker import NAMESPACE, build_broker
from workers.heartbeats import WorkerSeen, workers_seen

# Options Dramatiq's retries leave on a message; a retried dead letter starts afresh.
RETRY_OPTIONS = ("retries", "traceback", "eta", "requeue_timestamp", "redis_message_id")


class BrokerUnavailable(Exception):
    """The broker did not answer; the message says which and why."""


@dataclass(frozen=True, slots=True)
class QueueStats:
    name: str
    ready: int
    delayed: int
    in_flight: int
    dead_letters: int


@dataclass(frozen=True, slots=True)
class QueuesReport:
    broker: str
    namespace: str
    queues: tuple[QueueStats, ...]
    workers: tuple[WorkerSeen, ...]
    # What the broker itself knows of its clients: on Redis every process that talked to
    # it lately, senders included (Dramatiq's heartbeat set); on RabbitMQ the consumers
    # attached to the busiest of the service's queues.
    broker_clients_seen: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    queue: str
    message_id: str
    actor_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    dead_since_ms: int
    retries: int
    error: str | None


class BrokerQueues(Protocol):
    """What one broker tells operators (``workers.queues_redis``, ``workers.queues_rabbitmq``)."""

    kind: str
    namespace: str

    def queue_names(self) -> list[str]: ...

    def queue_stats(
        self, queues: Sequence[str], workers: Sequence[WorkerSeen]
    ) -> list[QueueStats]: ...

    def clients_seen(self) -> int: ...

    def list_dead_letters(self, queue: str | None, limit: int) -> list[DeadLetter]: ...

    def retry_dead_letters(self, queue: str | None) -> int:
        """Send every dead letter (of ``queue``, or of every queue) again through the
        broker's ``enqueue`` with a fresh retry count, then drop the dead one. Returns how
        many."""
        ...

    def purge_dead_letters(self, queue: str | None) -> int:
        """Drop every dead letter (of ``queue``, or of every queue). Returns how many.

        Safe for the memberships: the database still says what is left to do, and the
        sweep re-drives it.
        """
        ...

    def close(self) -> None: ...


def queues_meant(port: BrokerQueues, queue: str | None) -> list[str]:
    """``queue`` alone, or every queue of ``port`` when none is named (the dead-letter
    commands' ``--queue``)."""
    return [queue] if queue else port.queue_names()


def broker_queues(
    settings: Settings, broker: Broker | None = None, namespace: str = NAMESPACE
) -> BrokerQueues:
    """The port for ``settings.broker``. ``broker`` is what retried dead letters are sent
    through (default: one built from ``settings``)."""
    if settings.broker_is_rabbitmq:
        from workers.queues_rabbitmq import RabbitmqQueues

        return RabbitmqQueues(settings, broker)
    from workers.queues_redis import RedisQueues

    return RedisQueues(settings, broker, namespace)


def queues_report(port: BrokerQueues, session_factory: sessionmaker[Session]) -> QueuesReport:
    """Per queue: ready, delayed, in flight, dead letters; and the workers seen.

    Raises ``BrokerUnavailable`` when the broker does not answer.
    """
    clients = port.clients_seen()  # the broker first: one that is down says so at once
    names = port.queue_names()
    workers = workers_seen(session_factory)
    return QueuesReport(
        broker=port.kind,
        namespace=port.namespace,
        queues=tuple(port.queue_stats(names, workers)),
        workers=tuple(workers),
        broker_clients_seen=clients,
    )


def dead_letter(
    queue: str, message: Message[Any], message_id: str, dead_since_ms: int
) -> DeadLetter:
    """A ``DeadLetter`` of ``message`` as either broker keeps it."""
    traceback = (message.options.get("traceback") or "").strip()
    return DeadLetter(
        queue=queue,
        message_id=message_id,
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        dead_since_ms=dead_since_ms,
        retries=int(message.options.get("retries", 0)),
        error=traceback.splitlines()[-1] if traceback else None,
    )


@contextmanager
def resending_broker(
    settings: Settings, broker: Broker | None, namespace: str = NAMESPACE
) -> Iterator[Broker]:
    """The broker a retried dead letter is sent through: ``broker`` when given, else one
    built from ``settings`` for the retry and closed after it."""
    if broker is not None:
        yield broker
        return
    built = build_broker(settings, namespace=namespace)
    try:
        yield built
    finally:
        built.close()


def fresh_copy(message: Message[Any], queue: str) -> Message[Any]:
    """``message`` as a new message on ``queue``: a new id, no retry count, no backoff."""
    return Message(
        queue_name=queue,
        actor_name=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        options={k: v for k, v in message.options.items() if k not in RETRY_OPTIONS},
    )


__all__ = [
    "BrokerQueues",
    "BrokerUnavailable",
    "DeadLetter",
    "QueueStats",
    "QueuesReport",
    "WorkerSeen",
    "broker_queues",
    "queues_report",
]
