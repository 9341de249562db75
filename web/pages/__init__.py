"""The server-rendered pages: a member's Organizations page, an admin's settings, deleted
users and membership record, and the operators' view of queues and timers.

One blueprint per area (``account``, ``admin``, ``ops``); handlers parse a form,
call a use case from ``memberships`` and render. ``init_pages`` is called once by
``web.create_app``: it configures the session cookie and CSRF protection for the
pages only (the API authenticates with bearer tokens, so it has no cookie to
protect), registers the blueprints and their HTML error pages.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, g
from flask_wtf.csrf import CSRFProtect
from werkzeug.exceptions import HTTPException

from settings import Settings
from web.pages import errors, formatting
from web.services import EXTENSION_KEY

__all__ = ["init_pages"]

csrf = CSRFProtect()


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


def configure_session(app: Flask, settings: Settings) -> None:
    """The session cookie: HttpOnly, SameSite=Lax, and Secure outside development.

    Development is the dev sign-in (``DEV_SIGN_IN=1`` with ``JWT_SECRET``): ``make run``
    serves plain http://127.0.0.1, where a Secure cookie would never come back.
    """
    development = bool(settings.dev_sign_in and settings.jwt_secret)
    app.secret_key = app.secret_key or settings.secret_key
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

    from web.pages import account, admin, ops

    for bp in (account.bp, admin.bp, ops.bp):
        app.register_blueprint(bp)
    app.register_blueprint(_assets())
    install_error_pages(app)
