"""The server-rendered pages: a member's Organizations page, an admin's settings, deleted
users and membership record, and the operators' view of queues and timers.

One blueprint per area (``account``, ``admin``, ``ops``); handlers parse a form,
call a use case from ``memberships`` and render. ``init_pages`` is called once by
``web.create_app``: it configures the session cookie and CSRF protection for the
pages only (the API authenticates with bearer tokens, so it has no cookie to
protect), registers the blueprints and their HTML error pages.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from flask import Blueprint, Flask, g
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from settings import Settings, SettingsError
from web.pages import errors, formatting
from web.services import EXTENSION_KEY

__all__ = ["init_pages", "session_secret"]

log = logging.getLogger(__name__)

csrf = CSRFProtect()

# A key shorter than this can be found by trying: anyone who finds it signs in as anyone.
MIN_SECRET_KEY_LENGTH = 32
_MAKE_A_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def page_blueprint(name: str, import_name: str, url_prefix: str | None = None) -> Blueprint:
    """A blueprint of pages: every unsafe request needs a CSRF token, errors render as HTML.

    Hooks are attached here, once, when the module defines its blueprint: a blueprint
    that is already registered with an app cannot take new ones, and each test builds
    its own app.
    """
    bp = Blueprint(name, import_name, url_prefix=url_prefix)
    bp.before_request(csrf.protect)
    errors.register(bp)
    return bp


def _assets() -> Blueprint:
    """The pages' stylesheet and script, from ``web/static`` (nothing from the internet)."""
    return Blueprint(
        "pages_assets",
        __name__,
        static_folder="../static",
        static_url_path="/static/pages",
    )


def is_development(settings: Settings) -> bool:
    """The development sign-in (``DEV_SIGN_IN=1`` with ``JWT_SECRET``): ``make run``."""
    return bool(settings.dev_sign_in and settings.jwt_secret)


def session_secret(settings: Settings) -> str:
    """The key that signs the session cookies: ``SECRET_KEY``.

    Whoever knows it can forge a session for anyone, admins included, so it is its own
    secret: never ``JWT_SECRET`` (which ``lifecycle token`` users hold), never a constant.
    Outside the development sign-in a missing, short or reused key is a ``SettingsError``
    and the web process does not start. In development without one, each app makes a
    random key: sessions then end when the process restarts (``make run`` sets its own).
    """
    key = settings.secret_key
    development = is_development(settings)
    if key is None:
        if development:
            log.warning(
                "SECRET_KEY is not set: session cookies are signed with a random key made "
                "now, so sign-ins end when this process restarts (development only)"
            )
            return secrets.token_urlsafe(32)
        raise SettingsError(
            "SECRET_KEY is not set: the pages sign their session cookies with it; "
            f"set it to a long random value ({_MAKE_A_KEY})"
        )
    if key == settings.jwt_secret:
        raise SettingsError(
            "SECRET_KEY must not be JWT_SECRET: whoever can sign tokens could forge "
            f"page sessions too; give it a value of its own ({_MAKE_A_KEY})"
        )
    if not development and len(key) < MIN_SECRET_KEY_LENGTH:
        raise SettingsError(
            f"SECRET_KEY is {len(key)} characters long: use at least "
            f"{MIN_SECRET_KEY_LENGTH} random ones ({_MAKE_A_KEY})"
        )
    return key


def configure_session(app: Flask, settings: Settings) -> None:
    """The session cookie: signed with ``session_secret``, HttpOnly, SameSite=Lax, and
    Secure outside development (``make run`` serves plain http://127.0.0.1, where a
    Secure cookie would never come back)."""
    development = is_development(settings)
    app.secret_key = session_secret(settings)
    app.config.update(
        SESSION_COOKIE_NAME="lifecycle_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=not development,
        # The API's POSTs carry bearer tokens, not cookies: only page forms are checked,
        # by ``_protect`` below.
        WTF_CSRF_CHECK_DEFAULT=False,
    )


def _context() -> dict[str, Any]:
    return {"account": g.get("account")}


def install_error_pages(app: Flask) -> None:
    """Requests that matched no route belong to no blueprint: give the page paths an HTML
    404/405 and leave every other path to the handler the API registered, if any."""
    for code in (404, 405):
        before = app.error_handler_spec.get(None, {}).get(code, {})
        by_code = next(iter(before.values()), None)

        def handle(error: HTTPException, by_code: Any = by_code) -> Any:
            if errors.wants_html():
                return errors.render_http_error(error)
            api_handler = by_code or _class_handler(app, error)
            return api_handler(error) if api_handler else error

        app.register_error_handler(code, handle)


def _class_handler(app: Flask, error: Exception) -> Any:
    """The app-wide handler registered for the error's class (e.g. the API's problem+json)."""
    by_class = app.error_handler_spec.get(None, {}).get(None, {})
    for cls in type(error).__mro__:
        if cls in by_class:
            return by_class[cls]
    return None


def init_pages(app: Flask) -> None:
    """Called by ``create_app`` once its services are in ``app.extensions``."""
    configure_session(app, app.extensions[EXTENSION_KEY].settings)
    csrf.init_app(app)
    formatting.register(app)
    app.context_processor(_context)

    from web.pages import account, admin, ops, removal_requests, webhooks, webhooks_deliveries

    for bp in (
        account.bp,
        admin.bp,
        ops.bp,
        removal_requests.bp,
        webhooks.bp,
        webhooks_deliveries.bp,
    ):
        app.register_blueprint(bp)
    app.register_blueprint(_assets())
    install_error_pages(app)
