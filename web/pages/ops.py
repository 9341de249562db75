"""The operators' page: the durable timers (from the database) and the queues (from the
broker, Redis or RabbitMQ), refreshed every few seconds.

Timers come from ``memberships.operations.timers_report``, which also checks the
platform operator role. The queue figures come from ``workers.inspection``; when
the broker cannot be reached the page still shows the timers and says so, because the
timers are what matter for correctness (losing the broker's messages loses nothing). Both are
imported when the page is shown, so that the rest of the pages never depend on them.
"""

from __future__ import annotations

import importlib
import logging
from types import ModuleType
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from memberships.decisions import require_operator
from web.pages import page_blueprint
from web.pages import session as auth
from web.pages.context import clock, unit_of_work
from web.services import services

log = logging.getLogger(__name__)

bp = page_blueprint("pages_ops", __name__, url_prefix="/ops")

REFRESH_SECONDS = 5
TIMERS_MISSING = "Timers are not available (memberships/operations.py is missing)."


def _module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        log.warning("the operations page cannot use %s: it is not installed", name)
        return None


def _queues() -> tuple[Any, str | None]:
    """The queue report, or ``None`` and why it is not available."""
    inspection = _module("workers.inspection")
    if inspection is None:
        return None, "Queue inspection is not available (workers/inspection.py is missing)."
    from web.ops import current_queues_report

    try:
        return current_queues_report(), None
    except inspection.BrokerUnavailable as error:
        log.warning("queue inspection failed: %s", error)
        return None, "The queues could not be read from the broker (it did not answer)."


@bp.get("")
@auth.requires_sign_in
def overview() -> str:
    operations = _module("memberships.operations")
    timers = None
    if operations is not None:
        with unit_of_work() as uow:
            timers = operations.timers_report(uow, clock(), auth.principal(), limit=10)
    queues, queues_unavailable = _queues()
    return render_template(
        "pages/ops.html",
        timers=timers,
        timers_unavailable=None if operations else TIMERS_MISSING,
        queues=queues,
        queues_unavailable=queues_unavailable,
        refresh_seconds=REFRESH_SECONDS,
        now=clock()(),
    )


@bp.post("/dead-letters/retry")
@auth.requires_sign_in
def retry_dead_letters() -> Response:
    """Put the dead letters (of one queue, or of every queue) back on their queues."""
    with unit_of_work() as uow:
        require_operator(uow, auth.principal())
    queue = request.form.get("queue") or None
    inspection = _module("workers.inspection")
    if inspection is None:
        flash("Dead letters can't be retried: queue inspection is not available.", "error")
        return redirect(url_for("pages_ops.overview"), 303)
    try:
        port = inspection.broker_queues(services().settings)
        try:
            moved = port.retry_dead_letters(queue)
        finally:
            port.close()
    except inspection.BrokerUnavailable as error:
        log.warning("retrying dead letters failed: %s", error)
        flash("The dead letters could not be retried: the broker did not answer.", "error")
        return redirect(url_for("pages_ops.overview"), 303)
    where = f" of {queue}" if queue else ""
    flash(
        f"{moved} dead letter{'s' if moved != 1 else ''}{where} put back on the queue to run again."
        if moved
        else f"There were no dead letters{where} to retry.",
        "success",
    )
    return redirect(url_for("pages_ops.overview"), 303)
