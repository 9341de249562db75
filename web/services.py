"""What a request needs, built once per app by ``web.create_app`` and found here.

Views and the pages blueprint reach the settings, the clock and a fresh unit of
work through ``services()``; nothing is built at import time. The unit of work
carries the request id, so every audit row it writes names the request that
caused it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from flask import current_app, g
from sqlalchemy.orm import Session, sessionmaker

from memberships.clock import Clock
from memberships.principal import Principal
from settings import Settings
from store.unit_of_work import Dispatcher, Policy, UnitOfWork

EXTENSION_KEY = "lifecycle.services"


def count_refusal() -> None:
    """Note one audited refusal of this request (``web.rate_limits`` charges them)."""
    g.audited_refusals = g.get("audited_refusals", 0) + 1


@dataclass
class WebServices:
    """One app's composition: settings, database sessions, clock, dispatcher, Redis."""

    settings: Settings
    session_factory: sessionmaker[Session]
    clock: Clock
    dispatcher: Dispatcher
    policy: Policy
    redis: redis.Redis
    jwks_client: Any = None

    def uow(self) -> UnitOfWork:
        """A unit of work for this request (its id lands in the audit rows)."""
        return UnitOfWork(
            self.session_factory,
            self.dispatcher,
            self.policy,
            request_id=g.get("request_id"),
            on_denial=count_refusal,
        )


def services() -> WebServices:
    """The current app's services (inside a request or an app context)."""
    return current_app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]  # set by create_app


def principal() -> Principal:
    """The signed-in caller; the ``/v1`` blueprint sets it before any view runs."""
    found: Principal | None = g.get("principal")
    if found is None:
        raise RuntimeError("principal() called outside an authenticated request")
    return found
