"""The HTTP edge: ``create_app`` is the web process's one composition point.

``gunicorn 'web:create_app()'`` serves it (the ``web`` line of the ``Procfile``).
Nothing is built at import time: each app gets its own settings, database
sessions, clock, dispatcher and Redis client, so tests build as many as they like.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import weakref
from dataclasses import fields
from typing import Any

import redis
from apiflask import APIFlask
from flask import Request
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from composition import dispatcher_from, policy_from
from memberships.clock import utc_now
from settings import Settings, SettingsError
from web import bad_input, errors, headers, observability, rate_limits, request_id
from web.auth import (
    WEAK_SECRET_REPORTED,
    jwks_client_for,
    silence_key_length_warnings,
    weak_secret_warning,
)
from web.openapi import process_spec
from web.services import EXTENSION_KEY, WebServices

log = logging.getLogger(__name__)

TITLE = "Membership Lifecycle Service"
VERSION = "1.0.0"
MAX_BODY_BYTES = 64 * 1024
DEFAULT_RATE_LIMIT_PREFIX = "lifecycle-rate"
REDIS_TIMEOUT_SECONDS = 1.0

_COMPONENTS = {
    "session_factory",
    "clock",
    "dispatcher",
    "redis_client",
    "jwks_client",
    "rate_limit_key_prefix",
    "pages",
}


class ApiRequest(Request):
    """A request whose unparseable JSON body is a ``400 malformed-json`` problem, and
    whose JSON body may hold no text a database cannot store (``web.bad_input``)."""

    def get_json(  # type: ignore[override]  # werkzeug's overloads, one implementation
        self, force: bool = False, silent: bool = False, cache: bool = True
    ) -> Any:
        try:
            value = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:  # the parser's own limit, far below 64 KiB of brackets
            return self.on_json_loading_failed(ValueError(bad_input.TOO_DEEP))
        try:
            bad_input.check_json(value)
        except ValueError as error:
            return None if silent else self.on_json_loading_failed(error)
        return value

    def on_json_loading_failed(self, e: ValueError | None) -> Any:
        raise errors.MalformedJSON(f"The body is not valid JSON: {e}" if e else None)


def redis_client(settings: Settings) -> redis.Redis:
    """The app's Redis client (readiness, queue inspection), built to fail fast: short
    timeouts and one quick retry (a pooled connection Redis dropped on a restart gets one
    fresh try), never redis-py's multi-second backoff, which a readiness probe or a
    request must not wait for. Connects on first use."""
    return redis.Redis.from_url(
        settings.redis_url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        retry=Retry(ExponentialBackoff(cap=0.1, base=0.02), 1),
    )


def check_environment() -> Settings:
    """The web process's settings from the environment, checked as ``create_app`` will
    check them; on a bad one, ``error: <message naming the variable>`` on stderr and exit
    code 2, as the ``lifecycle`` command does.

    gunicorn builds the app in each worker, where a failure becomes a traceback and a
    restart loop; ``web.gunicorn_conf`` calls this in gunicorn's master instead, before
    it binds or forks.
    """
    try:
        settings = Settings.from_env()
        if importlib.util.find_spec("web.pages") is not None:
            from web.pages import session_secret

            session_secret(settings)
    except SettingsError as error:
        print(f"error: {error}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    return settings


def create_app(settings: Settings | None = None, **overrides: Any) -> APIFlask:
    """Build the app.

    ``settings`` default to ``Settings.from_env()``. ``overrides`` either change a
    setting by its field name (``rate_limit="2 per minute"``) or replace a component:
    ``session_factory``, ``clock``, ``dispatcher``, ``redis_client``, ``jwks_client``
    (a ``jwt.PyJWKClient``), ``rate_limit_key_prefix``, ``pages`` (``False``: the API
    alone, without the HTML pages). Raises ``TypeError`` for anything else and
    ``SettingsError`` for a bad environment.
    """
    settings = settings or Settings.from_env()
    setting_names = {f.name for f in fields(Settings)}
    unknown = set(overrides) - setting_names - _COMPONENTS
    if unknown:
        raise TypeError(f"create_app() got unknown overrides: {', '.join(sorted(unknown))}")
    changes = {k: v for k, v in overrides.items() if k in setting_names}
    if changes:
        settings = settings.with_changes(**changes)

    # /docs is web.docs (Swagger UI from a package, no CDN), not APIFlask's own page.
    app = APIFlask(__name__, title=TITLE, version=VERSION, docs_path=None)
    app.request_class = ApiRequest
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY_BYTES,
        AUTO_404_RESPONSE=False,
        AUTO_VALIDATION_ERROR_RESPONSE=False,
        AUTO_AUTH_ERROR_RESPONSE=False,
        DESCRIPTION=(
            "Runs every guest membership through an explicit, durable lifecycle: "
            "self-service leave, soft deletion, restore, permanent deletion. Errors are "
            "RFC 9457 `application/problem+json`; each `type` is listed in docs/errors.md."
        ),
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]  # DefaultJSONProvider: fields in schema order
    app.spec_processor(process_spec)

    services = WebServices(
        settings=settings,
        session_factory=overrides.get("session_factory") or _session_factory(settings),
        clock=overrides.get("clock") or utc_now,
        dispatcher=overrides.get("dispatcher") or dispatcher_from(settings),
        policy=policy_from(settings),
        redis=overrides.get("redis_client") or redis_client(settings),
        jwks_client=overrides.get("jwks_client") or jwks_client_for(settings),
    )
    app.extensions[EXTENSION_KEY] = services
    if "redis_client" not in overrides:
        # Ours to close: its sockets go with the app, not whenever the collector gets to them.
        weakref.finalize(app, services.redis.close)
    weak_secret = weak_secret_warning(settings)
    if weak_secret:
        if not os.environ.get(WEAK_SECRET_REPORTED):
            log.warning(weak_secret)
        silence_key_length_warnings()

    request_id.install(app)
    observability.install(app)
    headers.install(app)
    rate_limits.install(
        app,
        settings,
        services.jwks_client,
        overrides.get("rate_limit_key_prefix") or DEFAULT_RATE_LIMIT_PREFIX,
    )
    bad_input.install(app)
    errors.register_error_handlers(app)

    from web import (
        api_me,
        api_memberships,
        api_notices,
        api_organizations,
        api_removal_requests,
        api_webhook_deliveries,
        api_webhooks,
        docs,
        health,
        ops,
    )

    app.register_blueprint(docs.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api_me.bp)
    app.register_blueprint(api_notices.bp)
    app.register_blueprint(api_organizations.bp)
    app.register_blueprint(api_memberships.bp)
    app.register_blueprint(api_webhook_deliveries.bp)
    app.register_blueprint(api_webhook_deliveries.public)
    app.register_blueprint(api_removal_requests.me)
    app.register_blueprint(api_removal_requests.bp)
    app.register_blueprint(api_webhooks.bp)
    ops.register(app)

    # ---- HTML pages hook ---------------------------------------------------------------
    # The server-rendered pages live in the ``web.pages`` package, which defines
    # ``init_pages(app)``. It finds everything it needs through ``web.services.services()``
    # and verifies tokens with ``web.auth.verify_token``. It is called last, so that it
    # sees the API's error handlers and can send HTML errors to page paths only.
    if overrides.get("pages", True) and importlib.util.find_spec("web.pages") is not None:
        from web import pages

        pages.init_pages(app)
    for bp in app.blueprints.values():
        if not hasattr(bp, "enable_openapi"):
            # Plain Flask blueprints (the pages) stay out of the API document; APIFlask
            # 3.1 reads this attribute on every blueprint that has before_request hooks.
            bp.enable_openapi = False  # type: ignore[attr-defined]

    return app


def _session_factory(settings: Settings) -> Any:
    from store.database import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.database_url))
