"""The worker process's own Prometheus metrics: Dramatiq's ``Prometheus`` middleware.

Per queue and actor: messages processed (``dramatiq_messages_total``), errors
(``dramatiq_message_errors_total``), retries (``dramatiq_message_retries_total``),
rejections, i.e. dead letters (``dramatiq_message_rejects_total``), messages in progress
and delayed (gauges), and a histogram of durations in milliseconds
(``dramatiq_message_duration_milliseconds``). Every worker process writes them to files
under ``dramatiq_prom_db`` (prometheus_client's multiprocess mode) and one process the
``dramatiq`` command forks serves their sum on ``dramatiq_prom_host``:``dramatiq_prom_port``
(default ``0.0.0.0:9191``).

Multiprocess mode is chosen when ``prometheus_client`` is first imported, so this module
must be imported before anything that imports it: it imports nothing of it itself, and
the middleware's module only on the call (that module creates the files' folder on import,
which no other process must do).
"""

from __future__ import annotations

from dramatiq.middleware import Middleware


def worker_metrics_middleware() -> Middleware:
    """Dramatiq's ``Prometheus`` middleware, for the worker process only."""
    from dramatiq.middleware.prometheus import Prometheus

    return Prometheus()
