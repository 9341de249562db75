"""Per request: the log context, one access-log line, and the HTTP metrics.

Every record logged while a request is handled carries its ``request_id`` (and, once
a view has set them on ``g``, ``membership_id`` and ``organization_id``). When the
response is final, the ``web.access`` logger writes one line: method, route template,
status, duration, request id, user agent — never the path's query, a header holding a
token or cookie, or a body (e-mails stay out of the log). The same numbers go to the
process's Prometheus metrics (``workers.metrics.WebMetrics``), in memory only.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager
from typing import Any

from flask import Flask, g, request, request_finished
from flask.wrappers import Response

from logconfig import log_context

ACCESS = logging.getLogger("web.access")
METRICS_KEY = "lifecycle.metrics"
_CONTEXT = "_log_context"


def _open() -> None:
    g.started = time.perf_counter()
    context: AbstractContextManager[None] = log_context(request_id=g.get("request_id"))
    context.__enter__()
    setattr(g, _CONTEXT, context)


def _close(_error: BaseException | None) -> None:
    context = g.pop(_CONTEXT, None)
    if context is not None:
        context.__exit__(None, None, None)


def _finished(app: Flask, response: Response, **_extra: Any) -> None:
    started = g.get("started")
    seconds = time.perf_counter() - started if started is not None else 0.0
    route = request.url_rule.rule if request.url_rule is not None else None
    metrics = app.extensions.get(METRICS_KEY)
    if metrics is not None:
        metrics.record(request.method, route, response.status_code, seconds)
    fields = {
        "method": request.method,
        "route": route,
        "status": response.status_code,
        "duration_ms": round(seconds * 1000, 2),
        "user_agent": request.user_agent.string or None,
        "request_id": g.get("request_id"),
        "membership_id": g.get("membership_id"),
        "organization_id": g.get("organization_id"),
    }
    ACCESS.info(
        "%s %s %s",
        request.method,
        route or "<unmatched>",
        response.status_code,
        extra={k: v for k, v in fields.items() if v is not None},
    )


def install(app: Flask) -> None:
    """Call after ``web.request_id.install`` (the context needs the request id)."""
    app.before_request(_open)
    app.teardown_request(_close)
    request_finished.connect(_finished, app)
