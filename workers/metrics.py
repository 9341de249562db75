"""Prometheus metrics: the HTTP requests each web process served, and the lifecycle's
state read from the database and Redis that every process shares.

- HTTP requests are counted the Prometheus way, in the process that served them: a
  counter and a duration histogram (``WebMetrics``). Under gunicorn, which runs several
  worker processes, prometheus_client's multiprocess mode adds them up: each process
  writes its values to files in ``PROMETHEUS_MULTIPROC_DIR`` (``web/gunicorn_conf.py``
  sets it up) and a scrape of any worker reads them all. Nothing leaves the process on
  the request path.
- memberships by state, due and overdue timers, stalled and failing work, and
  transitions by event (from the audit log, so exact and restart-proof) and workers
  seen (their heartbeats) are read from the database; queue depths and dead letters
  from the broker, Redis or RabbitMQ (``workers.inspection``).
  ``LifecycleCollector`` keeps what it read for ``max_age_seconds`` (5 s), so frequent
  scrapes, or several Prometheus servers, do not count whole tables each time.
- ``process_*``: the scraped process's CPU, memory, open files and start time.

A source that does not answer is reported by ``lifecycle_scrape_source_up`` = 0;
the other metrics are still served.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator

import redis
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
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

# A scrape must not hang on a slow Redis.
SCRAPE_TIMEOUT_SECONDS = 0.25
# How long the database and Redis figures are reused between scrapes.
CACHE_SECONDS = 5.0
MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Request durations, in seconds: from a cached read (ms) to a slow write under load.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The only method labels: anything else a client invents is counted as "other", so a
# caller cannot make new series by sending made-up methods.
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "<unmatched>"


def request_labels(method: str, rule: str | None) -> tuple[str, str]:
    """The ``method`` and ``route`` labels of a request: a known method or ``other``;
    the route template that matched (one series per endpoint, however many ids), or
    ``<unmatched>`` for every path that matched none."""
    return (
        method if method in KNOWN_METHODS else OTHER_METHOD,
        rule if rule is not None else UNMATCHED_ROUTE,
    )


def multiprocess_dir() -> str | None:
    """``PROMETHEUS_MULTIPROC_DIR`` when the process runs in multiprocess mode."""
    return os.environ.get(MULTIPROCESS_DIR_VARIABLE) or None


class WebMetrics:
    """The web process's own metrics and the registry ``GET /metrics`` renders.

    ``record`` is called once per request; it only updates values in memory (or, in
    multiprocess mode, in this process's memory-mapped file)."""

    def __init__(self, collector: Collector | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        directory = multiprocess_dir()
        # In multiprocess mode the values live in files that MultiProcessCollector reads
        # for every process; the metric objects themselves are not registered.
        own = None if directory else self.registry
        self.requests = Counter(
            "lifecycle_http_requests",
            "HTTP requests by method, route template and status.",
            ["method", "route", "status"],
            registry=own,
        )
        self.duration = Histogram(
            "lifecycle_http_request_duration_seconds",
            "Time from the request reaching the app to its response, by route and status.",
            ["route", "status"],
            buckets=DURATION_BUCKETS,
            registry=own,
        )
        if directory:
            multiprocess.MultiProcessCollector(self.registry, path=directory)
        ProcessCollector(registry=self.registry)
        if collector is not None:
            self.registry.register(collector)

    def record(self, method: str, route: str | None, status: int, seconds: float) -> None:
        method, route = request_labels(method, route)
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(route, str(status)).observe(seconds)


def metrics_redis_client(settings: Settings) -> redis.Redis:
    """A client that never retries: a scrape gives up at once when Redis is down."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=SCRAPE_TIMEOUT_SECONDS,
        socket_connect_timeout=SCRAPE_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )


class LifecycleCollector(Collector):
    """Reads the database and the broker when scraped, at most once per
    ``max_age_seconds``."""

    def __init__(
        self,
        uow_factory: Callable[[], UnitOfWork],
        client: redis.Redis,
        queues: Callable[[], BrokerQueues],
        session_factory: sessionmaker[Session],
        namespace: str = NAMESPACE,
        clock: Clock = utc_now,
        max_age_seconds: float = CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.uow_factory = uow_factory
        self.client = client
        # A port per scrape, closed after it (a RabbitMQ connection is not shared
        # between threads).
        self.queues = queues
        self.session_factory = session_factory
        self.namespace = namespace
        self.clock = clock
        self.max_age_seconds = max_age_seconds
        self.monotonic = monotonic
        self._cached: list[Metric] = []
        self._read_at: float | None = None

    def collect(self) -> Iterator[Metric]:
        now = self.monotonic()
        if self._read_at is None or now - self._read_at >= self.max_age_seconds:
            self._cached = list(self._read())
            self._read_at = now
        yield from self._cached

    def _read(self) -> Iterator[Metric]:
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
        waiting_on_apps = GaugeMetricFamily(
            "lifecycle_removals_waiting_on_apps",
            "Purge-pending memberships whose own data is being or was removed and that wait "
            "for a connected app to confirm the removal.",
            value=timers["waiting_on_apps"],
        )
        waiting_on_apps_overdue = GaugeMetricFamily(
            "lifecycle_removals_waiting_on_apps_overdue",
            "Of the removals waiting on connected apps, those past removal_due_by. Alert on > 0.",
            value=timers["waiting_on_apps_overdue"],
        )
        overdue_requests = GaugeMetricFamily(
            "lifecycle_removal_requests_overdue",
            "Members' removal requests still open past their due date: the organization "
            "missed its deadline to answer. Alert on > 0.",
            value=timers["overdue_removal_requests"],
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
            waiting_on_apps,
            waiting_on_apps_overdue,
            overdue_requests,
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


def render(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The exposition text and its content type, for ``GET /metrics``."""
    # The classic text format every Prometheus server reads (our names are plain ASCII).
    return generate_latest(registry), CONTENT_TYPE_PLAIN_0_0_4
