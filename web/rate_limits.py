"""Rate limits (Flask-Limiter) kept in Redis, so they hold across gunicorn workers and machines.

One budget per caller across the whole API (``settings.rate_limit``, e.g. ``600 per
minute``): a signed-in caller is counted by user id, anyone else by address.
Health checks and the API documents are never limited. If Redis is unreachable the
request is let through (and ``/readyz`` reports Redis): losing the limiter must not
take the API down with it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from settings import Settings
from web.auth import authenticated_user_id

UNLIMITED_PATHS = ("/healthz", "/readyz", "/openapi.json", "/docs")
EXTENSION_KEY = "lifecycle.limiter"


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
        headers_enabled=False,
        swallow_errors=True,
        enabled=settings.rate_limits_enabled,
    )

    @limiter.request_filter
    def _unlimited() -> bool:
        return request.path.startswith(UNLIMITED_PATHS)

    limiter.init_app(app)
    app.extensions[EXTENSION_KEY] = limiter
    return limiter
