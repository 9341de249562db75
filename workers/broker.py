"""The one place that builds the broker.

Production and ``make run``: the broker at ``BROKER_URL`` (default ``REDIS_URL``),
a Dramatiq ``RedisBroker`` for ``redis://``/``rediss://`` and a ``RabbitmqBroker``
for ``amqp://``/``amqps://``. Fast unit tests of actors: a ``StubBroker`` with the
same middleware. Nothing here runs at import; ``workers.actors`` (what the
``dramatiq`` command imports) and ``workers.dispatch`` (what web and cli send
through) call ``build_broker``.

The broker carries only work that is due now: no message is ever sent with a
delay for a due time (the database holds those, the sweep acts on them). The
only delayed messages are Dramatiq's own retries, with backoff of seconds to
minutes.
"""

from __future__ import annotations

import redis
from dramatiq import Broker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import CurrentMessage, Middleware, default_middleware
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from settings import Settings

NAMESPACE = "lifecycle"
"""Prefix of every Redis key the broker writes (``lifecycle:removals``, ...); the queue
inspection reads the same keys."""

HEARTBEAT_TIMEOUT_MS = 60_000
"""A worker silent for this long is dead: its unacknowledged messages go back to the
queue (Dramatiq's maintenance) and the operators' view stops counting it."""

SOCKET_TIMEOUT_SECONDS = 10.0
CONNECT_TIMEOUT_SECONDS = 2.0


def middleware() -> list[Middleware]:
    """Dramatiq's defaults (age and time limits, retries with backoff, clean shutdown)
    plus ``CurrentMessage`` so logs can name the message being processed."""
    return [factory() for factory in default_middleware] + [CurrentMessage()]


def redis_client(settings: Settings, url: str | None = None) -> redis.Redis:
    """A client for the broker's Redis (``url``, else ``settings.broker``) that fails fast
    when Redis is down: a short connect timeout and two quick retries (redis-py's default
    backs off for about nine seconds, which a web request sending a message after its
    commit must not wait)."""
    return redis.Redis.from_url(
        url or settings.broker,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=CONNECT_TIMEOUT_SECONDS,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
    )


def build_broker(settings: Settings, *, namespace: str = NAMESPACE) -> Broker:
    """The broker at ``settings.broker``; connects lazily, on first use.

    ``namespace`` prefixes the Redis keys; RabbitMQ has none (a virtual host in the URL
    keeps deployments apart there).
    """
    if settings.broker_is_rabbitmq:
        from workers.broker_rabbitmq import build_rabbitmq_broker

        return build_rabbitmq_broker(settings.broker, middleware())
    return RedisBroker(
        client=redis_client(settings),
        namespace=namespace,
        middleware=middleware(),
        heartbeat_timeout=HEARTBEAT_TIMEOUT_MS,
    )


def build_stub_broker() -> StubBroker:
    """An in-memory broker with the same middleware, for fast unit tests of actors."""
    broker = StubBroker(middleware=middleware())
    broker.emit_after("process_boot")
    return broker


__all__ = ["NAMESPACE", "Broker", "build_broker", "build_stub_broker", "redis_client"]
