"""``/healthz`` (the process answers) and ``/readyz`` (it can do its work: database and Redis).

A load balancer stops sending traffic to an instance whose ``/readyz`` is ``503``;
an orchestrator restarts one whose ``/healthz`` fails. Neither needs a token nor
counts against rate limits.
"""

from __future__ import annotations

import logging

import redis
from apiflask import APIBlueprint
from sqlalchemy import text

from web.errors import edge_problem
from web.openapi import problems
from web.schemas import Health, Readiness
from web.services import services

log = logging.getLogger(__name__)

bp = APIBlueprint("health", __name__, tag="Operations")


@bp.get("/healthz")
@bp.output(Health)
@bp.doc(operation_id="getHealth", summary="Is the process up?")
def healthz() -> Health:
    return Health(status="ok")


def _database_ok() -> bool:
    try:
        with services().session_factory() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception:
        log.warning("readiness: the database does not answer", exc_info=True)
        return False


def _redis_ok() -> bool:
    try:
        return bool(services().redis.ping())
    except (redis.RedisError, OSError):
        log.warning("readiness: Redis does not answer", exc_info=True)
        return False


@bp.get("/readyz")
@bp.output(Readiness)
@bp.doc(
    operation_id="getReadiness",
    summary="Can it serve? (database and Redis reachable)",
    responses=problems("not-ready"),
)
def readyz() -> Readiness:
    checks = {
        "database": "ok" if _database_ok() else "unreachable",
        "redis": "ok" if _redis_ok() else "unreachable",
    }
    if any(state != "ok" for state in checks.values()):
        failing = ", ".join(name for name, state in checks.items() if state != "ok")
        return edge_problem("not-ready", f"Not reachable: {failing}.", checks=checks)  # type: ignore[return-value]  # a problem response short-cuts the output schema
    return Readiness(status="ready", checks=checks)
