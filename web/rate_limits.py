"""Rate limits (Flask-Limiter) kept in Redis, so they hold across gunicorn workers and machines.

One budget per caller across the whole API (``settings.rate_limit``, e.g. ``600 per
minute``): a signed-in caller is counted by user id, anyone else by address.

Refusals are audited, every one, in a log nobody can shorten; so that no caller can fill
it, the refusals written to the audit log (``forbidden``, ``leave-denied``, a stale
``If-Match``...) count against a tenth of the same limit (``REFUSAL_SHARE``, at least
one per window), per caller: with ``600 per minute``, 60 audited refusals a minute.
Once they are used up, the caller's next request is not tried: ``429 rate-limited``
until the window has room again.
Health checks and the API documents (those exact paths, nothing under or beside them)
are never limited; a path that matches no route is (Flask-Limiter would skip it).

If Redis is unreachable the request is let through (and ``/readyz`` reports Redis):
losing the limiter must not take the API down with it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many

from settings import Settings
from web.auth import authenticated_user_id
from web.errors import TooManyRefusals

log = logging.getLogger(__name__)

UNLIMITED_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs"})
EXTENSION_KEY = "lifecycle.limiter"
# The part of the rate limit a caller's audited refusals may use (web.services.count_refusal).
REFUSAL_SHARE = 10
UNMATCHED = "<unmatched>"
REFUSALS_SCOPE = "audited-refusals"


def refusal_limits(limit: str) -> list[RateLimitItem]:
    """``limit``'s windows with a tenth of their amount (at least 1): the refusals' budget."""
    return [
        type(item)(max(1, item.amount // REFUSAL_SHARE), item.multiples)
        for item in parse_many(limit)
    ]


def install(app: Flask, settings: Settings, jwks_client: Any, key_prefix: str) -> Limiter:
    def caller() -> str:
        user_id = authenticated_user_id(settings, jwks_client)
        return f"user:{user_id}" if user_id else f"addr:{get_remote_address()}"

    limiter = Limiter(
        caller,
        application_limits=[settings.rate_limit],
        storage_uri=settings.redis_url,
        storage_options={"socket_connect_timeout": 1, "socket_timeout": 1},
        strategy="moving-window",
        key_prefix=key_prefix,
        # Flask-Limiter exempts requests that matched no route; "/healthzX" is limited too.
        request_identifier=lambda: request.endpoint or UNMATCHED,
        headers_enabled=False,
        swallow_errors=True,
        enabled=settings.rate_limits_enabled,
    )

    @limiter.request_filter
    def _unlimited() -> bool:
        return request.path in UNLIMITED_PATHS

    limiter.init_app(app)
    if settings.rate_limits_enabled:
        _install_refusal_window(
            app, limiter, refusal_limits(settings.rate_limit), caller, key_prefix
        )
    app.extensions[EXTENSION_KEY] = limiter
    return limiter


def _install_refusal_window(
    app: Flask, limiter: Limiter, items: list[RateLimitItem], caller: Any, key_prefix: str
) -> None:
    """Refuse a caller whose audited refusals fill the window (before the view), and count
    this request's audited refusals into it (after the view)."""

    def keys() -> tuple[str, str, str]:
        return (key_prefix, REFUSALS_SCOPE, caller())

    def check() -> None:
        if request.path in UNLIMITED_PATHS:
            return
        try:
            full = [item for item in items if not limiter.limiter.test(item, *keys())]
            if not full:
                return
            reset_at = max(limiter.limiter.get_window_stats(i, *keys()).reset_time for i in full)
        except Exception:  # the store is down: let the request through, as the limiter does
            log.warning("could not read the refusals window", exc_info=True)
            return
        raise TooManyRefusals(max(1, int(reset_at - time.time())), str(full[0]))

    def charge(response: Response) -> Response:
        refusals = int(g.get("audited_refusals", 0))
        if refusals:
            try:
                for item in items:
                    limiter.limiter.hit(item, *keys(), cost=refusals)
            except Exception:
                log.warning("could not count an audited refusal", exc_info=True)
        return response

    app.before_request(check)
    app.after_request(charge)
