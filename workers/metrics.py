"""Prometheus metrics, computed when scraped, so they are right under any number of
gunicorn workers, worker processes and machines.

No process keeps a count in memory that another process would have to add up:

- memberships by state, due and overdue timers, stalled and failing work are
  counted in the database at scrape time;
- transitions by event are counted from the audit log (every process writes it,
  every transition is in it exactly once), so the counter is exact and survives
  restarts;
- queue depths and dead letters are read from the broker, Redis or RabbitMQ
  (``workers.inspection``), workers seen from their heartbeats in the database;
- HTTP requests are counted in one Redis hash (``HINCRBY`` per request), shared by
  every web process. A ``FLUSHALL`` resets it, which Prometheus treats as a
  counter reset.

A source that does not answer is reported by ``lifecycle_scrape_source_up`` = 0;
the other metrics are still served.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import cast

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy.orm import Session, sessionmaker

from memberships import operations
from memberships.clock import Clock, utc_now
from settings import Settings
from store.unit_of_work import UnitOfWork
from workers.broker import NAMESPACE
from workers.heartbeats import workers_seen
from workers.inspection import BrokerQueues, BrokerUnavailable

log = logging.getLogger(__name__)

# A request must never wait on metrics: counting gives up fast when Redis is slow.
COUNTING_TIMEOUT_SECONDS = 0.25
PAUSE_AFTER_FAILURE_SECONDS = 5.0


def http_requests_key(namespace: str = NAMESPACE) -> str:
    return f"{namespace}:__metrics__.http_requests"


def metrics_redis_client(settings: Settings) -> redis.Redis:
    """A client that never retries: a count or a scrape gives up at once when Redis is
    down, rather than holding the request."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=COUNTING_TIMEOUT_SECONDS,
        socket_connect_timeout=COUNTING_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


class HttpRequestCounter:
    """Counts HTTP requests by method, route and status in Redis, for every web process."""

    def __init__(self, client: redis.Redis, namespace: str = NAMESPACE) -> None:
        self.client = client
        self.key = http_requests_key(namespace)
        self._paused_until = 0.0

    def record(self, method: str, route: str, status: int) -> None:
        """Add one request; a Redis failure loses this count, never the request.

        After a failure, counting pauses for ``PAUSE_AFTER_FAILURE_SECONDS``, so a Redis
        that is down costs one timeout per pause, not one per request.
        """
        if time.monotonic() < self._paused_until:
            return
        try:
            self.client.hincrby(self.key, f"{method}|{route}|{status}", 1)
        except redis.RedisError as error:
            self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
            log.warning("HTTP requests not counted for a while", extra={"error": str(error)})

    def counts(self) -> dict[tuple[str, str, str], int]:
        counts = {}
        # A synchronous client: the reply is a dict, not an awaitable.
        for field, value in cast(dict[bytes, bytes], self.client.hgetall(self.key)).items():
            method, route, status = (field.decode() if isinstance(field, bytes) else field).split(
                "|", 2
            )
            counts[(method, route, status)] = int(value)
        return counts


class LifecycleCollector(Collector):
    """Reads the database, the broker and Redis on every scrape."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        client: redis.Redis,
        queues: Callable[[], BrokerQueues],
        session_factory: sessionmaker[Session],
        namespace: str = NAMESPACE,
        clock: Clock = utc_now,
    ) -> None:
        self.uow_factory = uow_factory
        self.client = client
        # A port per scrape, closed after it (a RabbitMQ connection is not shared
        # between threads).
        self.queues = queues
        self.session_factory = session_factory
        self.namespace = namespace
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "lifecycle_scrape_source_up",
            "Whether a source of these metrics answered this scrape (1) or not (0).",
            labels=["source"],
        )
        try:
            yield from self._database_metrics()
            up.add_metric(["database"], 1)
        except Exception:
            log.exception("metrics: the database did not answer")
            up.add_metric(["database"], 0)
        try:
            yield from self._broker_metrics()
            up.add_metric(["broker"], 1)
        except BrokerUnavailable:
            log.exception("metrics: the broker did not answer")
            up.add_metric(["broker"], 0)
        try:
            yield from self._redis_metrics()
            up.add_metric(["redis"], 1)
        except redis.RedisError:
            log.exception("metrics: Redis did not answer")
            up.add_metric(["redis"], 0)
        yield up

    def _database_metrics(self) -> list[Metric]:
        now = self.clock()
        with self.uow_factory() as uow:
            by_state = operations.count_by_state(uow)
            timers = operations.due_and_overdue(uow, now)
            work = operations.stalled_and_failing(uow, now)
            transitions = operations.transitions_by_event(uow)
        memberships = GaugeMetricFamily(
            "lifecycle_memberships", "Memberships by lifecycle state.", labels=["state"]
        )
        for state, count in by_state.items():
            memberships.add_metric([state], count)
        overdue_purges = GaugeMetricFamily(
            "lifecycle_purges_overdue",
            "Soft-deleted memberships past purge_due_at not yet taken by the sweep "
            "(stays above zero only when no scheduler runs).",
            value=timers["overdue_purges"],
        )
        overdue_removals = GaugeMetricFamily(
            "lifecycle_removals_overdue",
            "Purge-pending memberships past removal_due_by: the data-removal window was "
            "missed. Alert on > 0.",
            value=timers["overdue_removals"],
        )
        stalled = GaugeMetricFamily(
            "lifecycle_work_stalled",
            "In-progress memberships with no progress for REDRIVE_AFTER (being re-driven).",
            labels=["state"],
        )
        for key, count in work.items():
            if key.startswith("stalled:"):
                stalled.add_metric([key.removeprefix("stalled:")], count)
        failing = GaugeMetricFamily(
            "lifecycle_work_failing",
            "In-progress memberships with at least one recorded failed attempt.",
            value=work["failing"],
        )
        transitions_total = CounterMetricFamily(
            "lifecycle_transitions",
            "Lifecycle transitions made, by event (counted from the audit log).",
            labels=["event"],
        )
        for event, count in transitions.items():
            transitions_total.add_metric([event], count)
        workers = GaugeMetricFamily(
            "lifecycle_workers_seen",
            "Worker processes whose heartbeat is recent (from the database).",
            value=len(workers_seen(self.session_factory)),
        )
        return [
            memberships,
            overdue_purges,
            overdue_removals,
            stalled,
            failing,
            transitions_total,
            workers,
        ]

    def _broker_metrics(self) -> list[Metric]:
        port = self.queues()
        try:
            stats = port.queue_stats(port.queue_names(), workers_seen(self.session_factory))
        finally:
            port.close()
        messages = GaugeMetricFamily(
            "lifecycle_queue_messages",
            "Broker messages by queue and status (ready, delayed, in_flight).",
            labels=["queue", "status"],
        )
        dead = GaugeMetricFamily(
            "lifecycle_dead_letters", "Dead-lettered messages by queue.", labels=["queue"]
        )
        for q in stats:
            messages.add_metric([q.name, "ready"], q.ready)
            messages.add_metric([q.name, "delayed"], q.delayed)
            messages.add_metric([q.name, "in_flight"], q.in_flight)
            dead.add_metric([q.name], q.dead_letters)
        return [messages, dead]

    def _redis_metrics(self) -> list[Metric]:
        http = CounterMetricFamily(
            "lifecycle_http_requests",
            "HTTP requests by method, route and status, over every web process.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in sorted(
            HttpRequestCounter(self.client, self.namespace).counts().items()
        ):
            http.add_metric([method, route, status], count)
        return [http]


def registry_for(collector: LifecycleCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition text and its content type, for ``GET /metrics``."""
    # The classic text format every Prometheus server reads (our names are plain ASCII).
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
