"""Operations over HTTP: ``GET /v1/ops/queues`` and ``GET /v1/ops/timers`` for the platform
operator role, and ``GET /metrics`` for Prometheus.

The reports are computed elsewhere (``memberships.operations`` for the timers, from the
database; ``workers.inspection`` for the queues, from the broker (Redis or RabbitMQ);
``workers.metrics`` for Prometheus), so ``lifecycle timers``/``queues``, the operators'
page and these endpoints say the same. The reports are read when asked; ``/metrics``
reuses the database and Redis figures for a few seconds and adds up the HTTP metrics
of every gunicorn worker (prometheus_client's multiprocess mode).

``/metrics`` needs no token, like ``/healthz``: scrapers reach it from inside the
network; expose it to the outside only behind the load balancer's own rules.
"""

from __future__ import annotations

import logging
import weakref
from datetime import datetime
from typing import Any

from apiflask import APIBlueprint, APIFlask
from flask import Response, current_app
from pydantic import BaseModel, ConfigDict, Field

from memberships import operations
from memberships.decisions import require_operator
from memberships.operations import RequestTimerEntry, TimerEntry, TimersReport
from store.unit_of_work import UnitOfWork
from web.errors import edge_problem
from web.observability import METRICS_KEY
from web.openapi import problems
from web.schemas import Output
from web.services import EXTENSION_KEY, principal, services
from web.v1 import blueprint
from workers.inspection import BrokerUnavailable, QueuesReport, broker_queues, queues_report
from workers.metrics import (  # request_labels: the labels of one request, used by tests
    LifecycleCollector,
    WebMetrics,
    metrics_redis_client,
    render,
    request_labels,
)

__all__ = ["request_labels"]

log = logging.getLogger(__name__)

v1 = blueprint("ops", __name__, tag="Operations")
scrape = APIBlueprint("metrics", __name__, tag="Operations")


# ---- shapes -----------------------------------------------------------------------------


class QueueStatsOut(Output):
    name: str
    ready: int = Field(description="Messages waiting for a worker.")
    delayed: int = Field(description="Retries waiting for their backoff to pass.")
    in_flight: int = Field(description="Messages a worker has taken and not yet acknowledged.")
    dead_letters: int = Field(description="Messages given up on (kept 7 days).")


class WorkerSeenOut(Output):
    id: str
    host: str | None
    pid: int | None
    queues: list[str]
    threads: int | None
    seen_seconds_ago: float


class QueuesOut(Output):
    broker: str = Field(description="Which broker runs: redis or rabbitmq.")
    namespace: str = Field(description="The broker's Redis key prefix, or RabbitMQ's virtual host.")
    queues: list[QueueStatsOut]
    workers: list[WorkerSeenOut]
    broker_clients_seen: int = Field(
        description="Processes that talked to the broker lately, senders included."
    )

    @classmethod
    def of(cls, report: QueuesReport) -> QueuesOut:
        return cls(
            broker=report.broker,
            namespace=report.namespace,
            queues=[QueueStatsOut.model_validate(q, from_attributes=True) for q in report.queues],
            workers=[
                WorkerSeenOut(
                    id=w.id,
                    host=w.host,
                    pid=w.pid,
                    queues=list(w.queues),
                    threads=w.threads,
                    seen_seconds_ago=w.seen_seconds_ago,
                )
                for w in report.workers
            ],
            broker_clients_seen=report.broker_clients_seen,
        )


class TimerEntryOut(Output):
    membership_id: str
    organization_id: str
    state: str
    due_at: datetime | None
    last_progress_at: datetime | None
    removed_rows: int
    attempts: int
    last_error: str | None

    @classmethod
    def of(cls, entry: TimerEntry) -> TimerEntryOut:
        return cls.model_validate(entry, from_attributes=True)


class RequestTimerEntryOut(Output):
    request_id: str
    membership_id: str
    organization_id: str
    due_by: datetime
    overdue_at: datetime | None = Field(description="When the sweep marked it overdue.")

    @classmethod
    def of(cls, entry: RequestTimerEntry) -> RequestTimerEntryOut:
        return cls.model_validate(entry, from_attributes=True)


class TimersOut(Output):
    now: datetime
    by_state: dict[str, int]
    overdue_purges: int = Field(description="Soft-deleted past purge_due_at, not yet swept.")
    overdue_removals: int = Field(description="Purge-pending past removal_due_by.")
    stalled: dict[str, int] = Field(description="In progress with no progress for a while.")
    failing: int = Field(description="In progress with recorded failed attempts.")
    next_due_purges: list[TimerEntryOut]
    overdue_removal_list: list[TimerEntryOut]
    oldest_leave_pending: TimerEntryOut | None
    waiting_on_apps: int = Field(
        description="Purge-pending with a connected app that has not confirmed the removal."
    )
    waiting_on_apps_overdue: int = Field(
        description="Of those, past removal_due_by (an app that never confirms stays here)."
    )
    overdue_removal_requests: int = Field(
        description="Members' removal requests still open past their dueBy."
    )
    overdue_removal_request_list: list[RequestTimerEntryOut]

    @classmethod
    def of(cls, report: TimersReport) -> TimersOut:
        return cls(
            waiting_on_apps=report.waiting_on_apps,
            waiting_on_apps_overdue=report.waiting_on_apps_overdue,
            now=report.now,
            by_state=report.by_state,
            overdue_purges=report.overdue_purges,
            overdue_removals=report.overdue_removals,
            stalled=report.stalled,
            failing=report.failing,
            next_due_purges=[TimerEntryOut.of(e) for e in report.next_due_purges],
            overdue_removal_list=[TimerEntryOut.of(e) for e in report.overdue_removal_list],
            oldest_leave_pending=(
                TimerEntryOut.of(report.oldest_leave_pending)
                if report.oldest_leave_pending
                else None
            ),
            overdue_removal_requests=report.overdue_removal_requests,
            overdue_removal_request_list=[
                RequestTimerEntryOut.of(e) for e in report.overdue_removal_request_list
            ],
        )


class TimersQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    limit: int = Field(default=5, ge=1, le=100, description="Entries per list.")


# ---- views ------------------------------------------------------------------------------


@v1.get("/ops/queues")
@v1.output(QueuesOut)
@v1.doc(
    operation_id="getQueues",
    summary="Queues: ready, delayed, in flight, dead letters; workers seen",
    description="Read from the broker, Redis or RabbitMQ, and the workers' heartbeats. "
    "Platform operators only.",
    responses=problems("forbidden", "not-ready"),
)
def get_queues() -> Any:
    with services().uow() as uow:
        require_operator(uow, principal())
    try:
        report = current_queues_report()
    except BrokerUnavailable as error:
        log.warning("queue inspection failed: %s", error)
        return edge_problem("not-ready", "The broker did not answer.")
    return QueuesOut.of(report)


def current_queues_report() -> QueuesReport:
    """The queue report for this app's broker (the endpoint and the operators' page).

    A port of its own per call: a RabbitMQ connection is not shared between threads, and
    operators ask seldom. Raises ``BrokerUnavailable``.
    """
    s = services()
    port = broker_queues(s.settings)
    try:
        return queues_report(port, s.session_factory)
    finally:
        port.close()


@v1.get("/ops/timers")
@v1.input(TimersQuery, location="query", arg_name="query")
@v1.output(TimersOut)
@v1.doc(
    operation_id="getTimers",
    summary="Durable timers: memberships by state, due and overdue purges and removals",
    description="Read from the database, which holds every due time. Platform operators only.",
    responses=problems("forbidden"),
)
def get_timers(query: TimersQuery) -> TimersOut:
    s = services()
    with s.uow() as uow:
        report = operations.timers_report(uow, s.clock, principal(), limit=query.limit)
    return TimersOut.of(report)


@scrape.get("/metrics")
@scrape.output(
    {},
    content_type="text/plain",
    description="The Prometheus text exposition format.",
)
@scrape.doc(
    operation_id="getMetrics",
    summary="Prometheus metrics",
    description="HTTP requests and their durations (every gunicorn worker's), process_* "
    "figures, transitions by event, memberships by state, due and overdue timers, queue "
    "depths and dead letters (read from the database and Redis at most every 5 seconds).",
)
def get_metrics() -> Response:
    metrics: WebMetrics = current_app.extensions[METRICS_KEY]
    text, content_type = render(metrics.registry)
    return Response(text, mimetype=None, content_type=content_type)


# ---- wiring -----------------------------------------------------------------------------


def register(app: APIFlask) -> None:
    """Add the operations endpoints and the app's metrics (recorded by web.observability)."""
    app.register_blueprint(v1)
    app.register_blueprint(scrape)
    s = app.extensions[EXTENSION_KEY]
    # Its own Redis client (no retries, short timeouts), closed with the app.
    client = metrics_redis_client(s.settings)
    weakref.finalize(app, client.close)
    collector = LifecycleCollector(
        lambda: UnitOfWork(s.session_factory, policy=s.policy),
        client,
        lambda: broker_queues(s.settings),
        s.session_factory,
        clock=s.clock,
    )
    app.extensions[METRICS_KEY] = WebMetrics(collector)
