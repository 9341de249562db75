"""The queue port on Redis: read straight from Dramatiq's ``RedisBroker`` keys.

Per queue ``q`` under the namespace ``ns`` (see Dramatiq's ``dispatch.lua``):

- ``ns:q``          a list of ids of messages ready to run;
- ``ns:q.msgs``     a hash id → message of every message not yet acknowledged, ready
                    or fetched by a worker (so in flight = hash size − list length);
- ``ns:q.DQ.msgs``  the same for delayed messages (here: retries waiting for backoff);
- ``ns:q.XQ``       a sorted set of dead-lettered ids (by when), ``ns:q.XQ.msgs``
                    their messages, kept for 7 days.

Retrying a dead letter sends a fresh copy through ``broker.enqueue`` and then removes
it from the dead-letter keys; purging removes those keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import cast

import redis
from dramatiq import Broker, Message

from settings import Settings, without_password
from workers.broker import HEARTBEAT_TIMEOUT_MS, NAMESPACE, redis_client
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

# redis-py types every reply as "Awaitable | value" (one client class for sync and async);
# these clients are synchronous, so replies are cast to what Redis returns.


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisQueues:
    kind = "redis"

    def __init__(
        self,
        settings: Settings,
        broker: Broker | None = None,
        namespace: str = NAMESPACE,
        client: redis.Redis | None = None,
    ) -> None:
        self.settings = settings
        self.namespace = namespace
        self.client = client or redis_client(settings)
        self._owns_client = client is None
        self._broker = broker

    @contextmanager
    def _answers(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as error:
            raise BrokerUnavailable(
                f"Redis at {without_password(self.settings.broker)} did not answer: {error}"
            ) from error

    def queue_names(self) -> list[str]:
        """The service's queues, then any other queue with messages under the namespace."""
        found: list[str] = list(QUEUES)
        prefix = f"{self.namespace}:"
        with self._answers():
            for key in self.client.scan_iter(match=f"{prefix}*.msgs", count=500):
                name = _text(key)[len(prefix) : -len(".msgs")]
                for suffix in (".XQ", ".DQ"):
                    name = name.removesuffix(suffix)
                if not name.startswith("__") and name not in found:
                    found.append(name)
        return found

    def queue_stats(
        self, queues: Sequence[str], workers: Sequence[WorkerSeen] = ()
    ) -> list[QueueStats]:
        with self._answers(), self.client.pipeline(transaction=False) as pipe:
            for q in queues:
                base = f"{self.namespace}:{q}"
                pipe.llen(base)
                pipe.hlen(f"{base}.msgs")
                pipe.hlen(f"{base}.DQ.msgs")
                pipe.zcard(f"{base}.XQ")
            results = pipe.execute()
        stats = []
        for i, q in enumerate(queues):
            ready, unacked, delayed, dead = (int(v) for v in results[4 * i : 4 * i + 4])
            stats.append(QueueStats(q, ready, delayed, max(0, unacked - ready), dead))
        return stats

    def clients_seen(self) -> int:
        # Dramatiq's own heartbeat set: every process that talked to the broker lately.
        import time

        now_ms = int(time.time() * 1000)
        with self._answers():
            return int(
                cast(
                    int,
                    self.client.zcount(
                        f"{self.namespace}:__heartbeats__", now_ms - HEARTBEAT_TIMEOUT_MS, "+inf"
                    ),
                )
            )

    def list_dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        """The most recent dead letters (of ``queue``, or of every queue), newest first."""
        letters: list[DeadLetter] = []
        with self._answers():
            for q in queues_meant(self, queue):
                xq = f"{self.namespace}:{q}.XQ"
                entries = cast(
                    list[tuple[bytes, float]],
                    self.client.zrevrange(xq, 0, limit - 1, withscores=True),
                )
                if not entries:
                    continue
                raws = cast(
                    list[bytes | None], self.client.hmget(f"{xq}.msgs", [m for m, _ in entries])
                )
                for (member, score), raw in zip(entries, raws, strict=True):
                    if raw is not None:
                        letters.append(
                            dead_letter(q, Message.decode(raw), _text(member), int(score))
                        )
        letters.sort(key=lambda d: d.dead_since_ms, reverse=True)
        return letters[:limit]

    def retry_dead_letters(self, queue: str | None = None) -> int:
        """Send every dead letter (of ``queue``, or of every queue) again with a fresh retry
        count, then drop it from the dead letters. Returns how many."""
        moved = 0
        with (
            self._answers(),
            resending_broker(self.settings, self._broker, self.namespace) as broker,
        ):
            for q in queues_meant(self, queue):
                xq = f"{self.namespace}:{q}.XQ"
                dead = cast(dict[bytes, bytes], self.client.hgetall(f"{xq}.msgs"))
                for member, raw in dead.items():
                    broker.enqueue(fresh_copy(Message.decode(raw), q))
                    with self.client.pipeline(transaction=True) as pipe:
                        pipe.zrem(xq, member)
                        pipe.hdel(f"{xq}.msgs", _text(member))
                        pipe.execute()
                    moved += 1
        return moved

    def purge_dead_letters(self, queue: str | None = None) -> int:
        """``BrokerQueues.purge_dead_letters``: deletes the dead-letter keys."""
        dropped = 0
        with self._answers():
            for q in queues_meant(self, queue):
                xq = f"{self.namespace}:{q}.XQ"
                with self.client.pipeline(transaction=True) as pipe:
                    pipe.zcard(xq)
                    pipe.delete(xq, f"{xq}.msgs")
                    count, _ = pipe.execute()
                dropped += int(count)
        return dropped

    def close(self) -> None:
        if self._owns_client:
            self.client.close()
