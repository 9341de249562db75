"""The queue port on RabbitMQ: Dramatiq's ``RabbitmqBroker`` queues, read over AMQP.

For each queue ``q`` Dramatiq declares three durable queues on the default exchange:
``q`` (ready messages), ``q.DQ`` (retries waiting for their backoff) and ``q.XQ`` (dead
letters: ``q`` routes a rejected message there; kept 7 days). A passive declaration
(``passive=True``) returns a queue's ready count and its consumers without creating it.

What AMQP does not tell a client is how many messages are taken and not yet
acknowledged. Those are the workers' own: every worker's heartbeat row counts, per queue,
the messages it runs and the retries it holds until their backoff has passed
(``workers.heartbeats``), and this port adds them up. A worker's prefetched messages
that it has not started yet are counted by neither side.

Listing dead letters takes them without acknowledging and closes the channel, which
puts them back; retrying sends a fresh copy through ``broker.enqueue`` and then
acknowledges the dead one; purging empties ``q.XQ``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any

import pika
import pika.exceptions
from dramatiq import Broker, Message
from pika.adapters.blocking_connection import BlockingChannel

from settings import Settings, without_password
from workers.broker_rabbitmq import connection_parameters
from workers.heartbeats import WorkerSeen
from workers.inspection import (
    BrokerUnavailable,
    DeadLetter,
    QueueStats,
    dead_letter,
    fresh_copy,
    queues_meant,
    resending_broker,
)
from workers.messages import QUEUES

NOT_FOUND = 404


def _dead_since_ms(properties: pika.BasicProperties) -> int:
    """When RabbitMQ dead-lettered the message (its ``x-death`` header), in ms."""
    deaths = (properties.headers or {}).get("x-death") or []
    when = deaths[0].get("time") if deaths else None
    if isinstance(when, datetime):
        return int(when.timestamp() * 1000)
    if isinstance(when, int | float):
        return int(when * 1000)
    return 0


class RabbitmqQueues:
    kind = "rabbitmq"
    namespace = ""

    def __init__(self, settings: Settings, broker: Broker | None = None) -> None:
        self.settings = settings
        self._broker = broker
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self.namespace = connection_parameters(settings.broker).virtual_host

    # ---- the connection ----------------------------------------------------------------

    @contextmanager
    def _answers(self) -> Iterator[None]:
        try:
            yield
        except (pika.exceptions.AMQPError, OSError) as error:
            self.close()
            raise BrokerUnavailable(
                f"RabbitMQ at {without_password(self.settings.broker)} did not answer: "
                f"{type(error).__name__} {error}"
            ) from error

    def _open_channel(self) -> BlockingChannel:
        if self._connection is None or not self._connection.is_open:
            self._connection = pika.BlockingConnection(connection_parameters(self.settings.broker))
            self._channel = None
        if self._channel is None or not self._channel.is_open:
            self._channel = self._connection.channel()
        return self._channel

    def _declared(self, name: str) -> tuple[int, int]:
        """(ready messages, consumers) of queue ``name``; (0, 0) when it does not exist."""
        try:
            ok = self._open_channel().queue_declare(queue=name, passive=True)
        except pika.exceptions.ChannelClosedByBroker as error:
            if error.reply_code != NOT_FOUND:
                raise
            self._channel = None  # the broker closed it; the next call opens another
            return 0, 0
        return int(ok.method.message_count), int(ok.method.consumer_count)

    # ---- the port ----------------------------------------------------------------------

    def queue_names(self) -> list[str]:
        # AMQP cannot list queues; the service's own are the ones its workers consume.
        return list(QUEUES)

    def queue_stats(
        self, queues: Sequence[str], workers: Sequence[WorkerSeen] = ()
    ) -> list[QueueStats]:
        stats = []
        with self._answers():
            for q in queues:
                ready, _ = self._declared(q)
                waiting, _ = self._declared(f"{q}.DQ")
                dead, _ = self._declared(f"{q}.XQ")
                running = sum(w.running.get(q, 0) for w in workers)
                held = sum(w.delayed.get(q, 0) for w in workers)
                stats.append(QueueStats(q, ready, waiting + held, running, dead))
        return stats

    def clients_seen(self) -> int:
        with self._answers():
            return max((self._declared(q)[1] for q in self.queue_names()), default=0)

    def list_dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters per queue (oldest first there), newest first."""
        letters: list[DeadLetter] = []
        with self._answers():
            for q in queues_meant(self, queue):
                if self._declared(f"{q}.XQ")[0] == 0:
                    continue
                channel = self._open_channel()
                for _ in range(limit):
                    method, properties, body = channel.basic_get(f"{q}.XQ", auto_ack=False)
                    if method is None:
                        break
                    message: Message[Any] = Message.decode(body)
                    letters.append(
                        dead_letter(q, message, message.message_id, _dead_since_ms(properties))
                    )
                # Closing the channel puts every message taken back, as it was.
                channel.close()
                self._channel = None
        letters.sort(key=lambda d: d.dead_since_ms, reverse=True)
        return letters[:limit]

    def retry_dead_letters(self, queue: str | None = None) -> int:
        """Send every dead letter (of ``queue``, or of every queue) again with a fresh retry
        count, then acknowledge it on ``q.XQ``. Returns how many."""
        moved = 0
        with self._answers(), resending_broker(self.settings, self._broker) as broker:
            for q in queues_meant(self, queue):
                # Only those dead now: a retried one that dies again at once waits for
                # the next retry.
                count, _ = self._declared(f"{q}.XQ")
                channel = self._open_channel()
                for _ in range(count):
                    method, _properties, body = channel.basic_get(f"{q}.XQ", auto_ack=False)
                    if method is None:
                        break
                    broker.enqueue(fresh_copy(Message.decode(body), q))
                    channel.basic_ack(method.delivery_tag)
                    moved += 1
        return moved

    def purge_dead_letters(self, queue: str | None = None) -> int:
        """``BrokerQueues.purge_dead_letters``: purges ``<queue>.XQ``."""
        dropped = 0
        with self._answers():
            for q in queues_meant(self, queue):
                if self._declared(f"{q}.XQ")[0] == 0:
                    continue
                ok = self._open_channel().queue_purge(f"{q}.XQ")
                dropped += int(ok.method.message_count)
        return dropped

    def close(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            with suppress(pika.exceptions.AMQPError):
                connection.close()
