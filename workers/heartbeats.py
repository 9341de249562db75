"""Workers announce themselves in the database, so operators see which ones are alive.

A broker's own notion of its clients cannot say how many workers there are (Dramatiq's
Redis heartbeat set also holds every process that merely sends; RabbitMQ counts
consumers per queue), and a heartbeat in Redis would not exist on RabbitMQ. So each
worker process writes one row of ``worker_heartbeats`` (its id, host, pid, queues and
threads) and rewrites ``seen_at`` every ``BEAT_SECONDS``; ``workers_seen`` lists the
rows seen within ``SEEN_WITHIN``. A worker stopped cleanly deletes its row; one killed
ages out, and its row is deleted by the next worker that starts.

Each row also carries, per queue, the messages the worker is running and those it holds
for a retry's backoff: RabbitMQ cannot tell a client how many messages are taken and
unacknowledged, so the RabbitMQ queue report adds these up (``workers.queues_rabbitmq``).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dramatiq import Broker, Worker
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from store.models import WorkerHeartbeat

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
SEEN_WITHIN = timedelta(seconds=20)
FORGET_AFTER = timedelta(hours=1)
"""Rows older than this are deleted when a worker starts (workers killed long ago)."""


@dataclass(frozen=True, slots=True)
class WorkerSeen:
    id: str
    host: str | None
    pid: int | None
    queues: tuple[str, ...]
    threads: int | None
    seen_seconds_ago: float
    running: dict[str, int]
    delayed: dict[str, int]


def _now() -> datetime:
    return datetime.now(UTC)


def _canonical(queue_name: str) -> str:
    # Dramatiq names a queue's delay queue "<queue>.DQ"; a retry's message carries it.
    return queue_name.removesuffix(".DQ")


class WorkerHeartbeats(Middleware):
    """Writes this worker process's heartbeat row while it runs, and counts the messages it
    is running and holding per queue."""

    def __init__(
        self,
        session_factory: Callable[[], sessionmaker[Session]],
        beat_seconds: float = BEAT_SECONDS,
    ) -> None:
        # A callable: the worker's session factory is built in the worker process, after
        # the fork, never in the dramatiq parent that imports the actors.
        self.session_factory = session_factory
        self.beat_seconds = beat_seconds
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._running: Counter[str] = Counter()
        self._delayed: Counter[str] = Counter()
        self._delayed_ids: set[str] = set()
        self._info: dict[str, Any] = {}

    # ---- counting (worker threads) -----------------------------------------------------

    def before_delay_message(self, broker: Broker, message: MessageProxy) -> None:
        with self._lock:
            self._delayed[_canonical(message.queue_name)] += 1
            self._delayed_ids.add(message.message_id)

    def before_process_message(self, broker: Broker, message: MessageProxy) -> None:
        queue = _canonical(message.queue_name)
        with self._lock:
            if message.message_id in self._delayed_ids:
                self._delayed_ids.discard(message.message_id)
                self._delayed[queue] -= 1
            self._running[queue] += 1

    def after_process_message(
        self,
        broker: Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        with self._lock:
            self._running[_canonical(message.queue_name)] -= 1

    def after_skip_message(self, broker: Broker, message: MessageProxy) -> None:
        self.after_process_message(broker, message)

    def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """(running, delayed) by queue, zeros left out."""
        with self._lock:
            return (
                {q: n for q, n in self._running.items() if n > 0},
                {q: n for q, n in self._delayed.items() if n > 0},
            )

    # ---- the heartbeat -----------------------------------------------------------------

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        queues = sorted(
            q
            for q in (worker.consumer_whitelist or broker.get_declared_queues())
            if not q.endswith((".DQ", ".XQ"))
        )
        self._info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": queues,
            "threads": worker.worker_threads,
            "started_at": _now(),
        }
        try:
            forget_old(self.session_factory())
        except SQLAlchemyError as error:
            log.warning("old worker heartbeats not deleted", extra={"error": str(error)})
        self._thread = threading.Thread(target=self._beat, name="worker-heartbeat", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.beat_seconds)
        try:
            with self.session_factory().begin() as session:
                session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.id == self.worker_id))
        except SQLAlchemyError:
            pass  # it ages out of SEEN_WITHIN

    def beat(self) -> None:
        """Write one heartbeat now (also used by tests)."""
        running, delayed = self.counts()
        in_flight = json.dumps({"running": running, "delayed": delayed}, sort_keys=True)
        with self.session_factory().begin() as session:
            row = session.get(WorkerHeartbeat, self.worker_id)
            if row is None:
                row = WorkerHeartbeat(
                    id=self.worker_id,
                    host=self._info.get("host", socket.gethostname()),
                    pid=self._info.get("pid", os.getpid()),
                    queues=json.dumps(self._info.get("queues", [])),
                    threads=self._info.get("threads", 0),
                    started_at=self._info.get("started_at", _now()),
                )
                session.add(row)
            row.in_flight = in_flight
            row.seen_at = _now()

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except SQLAlchemyError as error:
                log.warning("worker heartbeat not written", extra={"error": str(error)})
            self._stop.wait(self.beat_seconds)


def forget_old(session_factory: sessionmaker[Session], now: datetime | None = None) -> int:
    """Delete the rows of workers gone for ``FORGET_AFTER``; returns how many."""
    cutoff = (now or _now()) - FORGET_AFTER
    with session_factory.begin() as session:
        result = session.execute(delete(WorkerHeartbeat).where(WorkerHeartbeat.seen_at < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)


def workers_seen(
    session_factory: sessionmaker[Session], now: datetime | None = None
) -> list[WorkerSeen]:
    """The workers whose heartbeat is at most ``SEEN_WITHIN`` old, oldest start first."""
    now = now or _now()
    with session_factory() as session:
        rows = session.scalars(
            select(WorkerHeartbeat)
            .where(WorkerHeartbeat.seen_at >= now - SEEN_WITHIN)
            .order_by(WorkerHeartbeat.started_at, WorkerHeartbeat.id)
        ).all()
    seen = []
    for row in rows:
        counts = json.loads(row.in_flight or "{}")
        seen.append(
            WorkerSeen(
                id=row.id,
                host=row.host,
                pid=row.pid,
                queues=tuple(json.loads(row.queues or "[]")),
                threads=row.threads,
                seen_seconds_ago=round(max(0.0, (now - row.seen_at).total_seconds()), 1),
                running=dict(counts.get("running", {})),
                delayed=dict(counts.get("delayed", {})),
            )
        )
    return seen
