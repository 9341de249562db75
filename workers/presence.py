"""Workers announce themselves in Redis, so operators see which ones are alive.

Dramatiq's own heartbeat set also holds every process that merely *sends* a
message (web, scheduler), so it cannot say how many workers there are. Each
worker process here writes its id with the time into ``<namespace>:__workers__``
(a sorted set) and what it consumes into ``<namespace>:__workers__.info`` (a
hash) every few seconds; ``workers.inspection`` counts those seen within
``SEEN_WITHIN_MS``. A ``FLUSHALL`` wipes them; they reappear on the next beat.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

import redis
from dramatiq import Broker, Worker
from dramatiq.middleware import Middleware

log = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
SEEN_WITHIN_MS = 20_000


def workers_key(namespace: str) -> str:
    return f"{namespace}:__workers__"


def workers_info_key(namespace: str) -> str:
    return f"{namespace}:__workers__.info"


class WorkerPresence(Middleware):
    """Writes this worker process's presence to Redis while it runs."""

    def __init__(self, client: redis.Redis, namespace: str, beat_seconds: float = BEAT_SECONDS):
        self.client = client
        self.namespace = namespace
        self.beat_seconds = beat_seconds
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._info: dict[str, Any] = {}

    def after_worker_boot(self, broker: Broker, worker: Worker) -> None:
        queues = sorted(worker.consumer_whitelist or broker.get_declared_queues())
        self._info = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "queues": queues,
            "threads": worker.worker_threads,
            "started_at": int(time.time() * 1000),
        }
        self._thread = threading.Thread(target=self._beat, name="worker-presence", daemon=True)
        self._thread.start()

    def before_worker_shutdown(self, broker: Broker, worker: Worker) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.beat_seconds)
        try:
            self.client.zrem(workers_key(self.namespace), self.worker_id)
            self.client.hdel(workers_info_key(self.namespace), self.worker_id)
        except redis.RedisError:
            pass  # it will age out of SEEN_WITHIN_MS

    def beat(self) -> None:
        """Write one heartbeat now (also used by tests)."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zadd(workers_key(self.namespace), {self.worker_id: int(time.time() * 1000)})
            pipe.hset(workers_info_key(self.namespace), self.worker_id, json.dumps(self._info))
            pipe.execute()

    def _beat(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except redis.RedisError as error:
                log.warning("worker presence not written", extra={"error": str(error)})
            self._stop.wait(self.beat_seconds)
