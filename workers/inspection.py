"""The operators' view of the queues, read straight from the broker's Redis keys.

Dramatiq's ``RedisBroker`` keeps, per queue ``q`` under the namespace ``ns``
(see its ``dispatch.lua``):

- ``ns:q``          a list of ids of messages ready to run;
- ``ns:q.msgs``     a hash id → message of every message not yet acknowledged, ready
                    or fetched by a worker (so in flight = hash size − list length);
- ``ns:q.DQ.msgs``  the same for delayed messages (here: retries waiting for backoff);
- ``ns:q.XQ``       a sorted set of dead-lettered ids (by when), ``ns:q.XQ.msgs``
                    their messages, kept for 7 days.

Workers seen come from ``workers.presence``. These are read-only, except
``retry_dead_letters`` and ``purge_dead_letters``, which operators run on purpose.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis
from dramatiq import Message

from workers.broker import HEARTBEAT_TIMEOUT_MS, NAMESPACE
from workers.messages import QUEUES
from workers.presence import SEEN_WITHIN_MS, workers_info_key, workers_key

# redis-py types every reply as "Awaitable | value" (one client class for sync and async);
# these clients are synchronous, so replies are cast to what Redis returns.

# Options Dramatiq's retries leave on a message; a retried dead letter starts afresh.
_RETRY_OPTIONS = ("retries", "traceback", "eta", "requeue_timestamp")


@dataclass(frozen=True, slots=True)
class QueueStats:
    name: str
    ready: int
    delayed: int
    in_flight: int
    dead_letters: int


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    id: str
    host: str | None
    pid: int | None
    queues: tuple[str, ...]
    threads: int | None
    seen_seconds_ago: float


@dataclass(frozen=True, slots=True)
class QueuesReport:
    namespace: str
    queues: tuple[QueueStats, ...]
    workers: tuple[WorkerSeen, ...]
    # Every process that talked to the broker lately, senders included (Dramatiq's own
    # heartbeat set).
    broker_clients_seen: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    queue: str
    redis_message_id: str
    actor_name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    dead_since_ms: int
    retries: int
    error: str | None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def discover_queues(client: redis.Redis, namespace: str = NAMESPACE) -> list[str]:
    """The service's queues, then any other queue with messages under the namespace."""
    found: list[str] = list(QUEUES)
    prefix = f"{namespace}:"
    for key in client.scan_iter(match=f"{prefix}*.msgs", count=500):
        name = _text(key)[len(prefix) : -len(".msgs")]
        for suffix in (".XQ", ".DQ"):
            name = name.removesuffix(suffix)
        if not name.startswith("__") and name not in found:
            found.append(name)
    return found


def queue_stats(
    client: redis.Redis, queues: Sequence[str], namespace: str = NAMESPACE
) -> list[QueueStats]:
    with client.pipeline(transaction=False) as pipe:
        for q in queues:
            base = f"{namespace}:{q}"
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


def workers_seen(
    client: redis.Redis, namespace: str = NAMESPACE, now_ms: int | None = None
) -> list[WorkerSeen]:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    seen: list[tuple[bytes, float]] = cast(
        list[tuple[bytes, float]],
        client.zrangebyscore(
            workers_key(namespace), now_ms - SEEN_WITHIN_MS, "+inf", withscores=True
        ),
    )
    if not seen:
        return []
    infos = cast(
        list[bytes | None],
        client.hmget(workers_info_key(namespace), [member for member, _ in seen]),
    )
    workers = []
    for (member, score), raw in zip(seen, infos, strict=True):
        info = json.loads(raw) if raw else {}
        workers.append(
            WorkerSeen(
                id=_text(member),
                host=info.get("host"),
                pid=info.get("pid"),
                queues=tuple(info.get("queues", ())),
                threads=info.get("threads"),
                seen_seconds_ago=round(max(0.0, (now_ms - score) / 1000), 1),
            )
        )
    return workers


def queues_report(client: redis.Redis, namespace: str = NAMESPACE) -> QueuesReport:
    """Per queue: ready, delayed, in flight, dead letters; and the workers seen.

    Raises ``redis.RedisError`` when Redis does not answer.
    """
    now_ms = int(time.time() * 1000)
    clients = cast(
        int, client.zcount(f"{namespace}:__heartbeats__", now_ms - HEARTBEAT_TIMEOUT_MS, "+inf")
    )
    return QueuesReport(
        namespace=namespace,
        queues=tuple(queue_stats(client, discover_queues(client, namespace), namespace)),
        workers=tuple(workers_seen(client, namespace, now_ms)),
        broker_clients_seen=int(clients),
    )


def _queues(client: redis.Redis, queue: str | None, namespace: str) -> Iterable[str]:
    return [queue] if queue else discover_queues(client, namespace)


def list_dead_letters(
    client: redis.Redis, queue: str | None = None, namespace: str = NAMESPACE, limit: int = 100
) -> list[DeadLetter]:
    """The most recent dead letters (of ``queue``, or of every queue), newest first."""
    letters: list[DeadLetter] = []
    for q in _queues(client, queue, namespace):
        xq = f"{namespace}:{q}.XQ"
        entries = cast(
            list[tuple[bytes, float]], client.zrevrange(xq, 0, limit - 1, withscores=True)
        )
        if not entries:
            continue
        raws = cast(list[bytes | None], client.hmget(f"{xq}.msgs", [m for m, _ in entries]))
        for (member, score), raw in zip(entries, raws, strict=True):
            if raw is None:
                continue
            message = Message.decode(raw)
            traceback = message.options.get("traceback") or ""
            letters.append(
                DeadLetter(
                    queue=q,
                    redis_message_id=_text(member),
                    actor_name=message.actor_name,
                    args=message.args,
                    kwargs=dict(message.kwargs),
                    dead_since_ms=int(score),
                    retries=int(message.options.get("retries", 0)),
                    error=traceback.strip().splitlines()[-1] if traceback.strip() else None,
                )
            )
    letters.sort(key=lambda d: d.dead_since_ms, reverse=True)
    return letters[:limit]


def retry_dead_letters(
    client: redis.Redis, queue: str | None = None, namespace: str = NAMESPACE
) -> int:
    """Put every dead letter (of ``queue``, or of every queue) back on its queue, ready to
    run with a fresh retry count. Returns how many were moved."""
    moved = 0
    for q in _queues(client, queue, namespace):
        xq, base = f"{namespace}:{q}.XQ", f"{namespace}:{q}"
        dead = cast(dict[bytes, bytes], client.hgetall(f"{xq}.msgs"))
        for member_bytes, raw in dead.items():
            member = _text(member_bytes)
            message = Message.decode(raw)
            fresh = dataclasses.replace(
                message,
                queue_name=q,
                options={k: v for k, v in message.options.items() if k not in _RETRY_OPTIONS},
            )
            with client.pipeline(transaction=True) as pipe:
                pipe.hset(f"{base}.msgs", member, fresh.encode())  # type: ignore[arg-type]  # bytes are fine
                pipe.rpush(base, member)
                pipe.zrem(xq, member)
                pipe.hdel(f"{xq}.msgs", member)
                pipe.execute()
            moved += 1
    return moved


def purge_dead_letters(
    client: redis.Redis, queue: str | None = None, namespace: str = NAMESPACE
) -> int:
    """Drop every dead letter (of ``queue``, or of every queue). Returns how many.

    Safe for the memberships: the database still says what is left to do, and the
    sweep re-drives it.
    """
    dropped = 0
    for q in _queues(client, queue, namespace):
        xq = f"{namespace}:{q}.XQ"
        with client.pipeline(transaction=True) as pipe:
            pipe.zcard(xq)
            pipe.delete(xq, f"{xq}.msgs")
            count, _ = pipe.execute()
        dropped += int(count)
    return dropped
