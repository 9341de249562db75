"""Errors on the pages render as readable HTML pages, never a stack trace.

The API keeps its problem+json: these handlers are registered on the page
blueprints only, so they see errors raised by page views. A request that
matched no route at all belongs to no blueprint; ``wants_html`` decides those by
path and ``Accept``, and ``web.pages.install_error_pages`` hands every other request to the
handler the API registered.
"""

from __future__ import annotations

import logging

from flask import Blueprint, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from memberships.errors import LifecycleError
from web.errors import status_of

log = logging.getLogger(__name__)

PAGE_PREFIXES = ("/account", "/admin", "/ops", "/sign-in", "/sign-out", "/static/pages")
"""Paths that belong to the pages; everything else (``/v1`` above all) is the API's."""

_TITLES = {
    400: "The request could not be understood",
    403: "You don't have access to this page",
    404: "Page not found",
    405: "That action is not available here",
    409: "That could not be done",
    422: "The form could not be accepted",
    500: "Something went wrong on our side",
}


def wants_html() -> bool:
    """Page paths always get HTML; any other path gets HTML only when the client prefers it
    (a browser's ``Accept: text/html,…``), so API clients keep their problem+json."""
    path = request.path
    if path == "/" or any(path == p or path.startswith(p + "/") for p in PAGE_PREFIXES):
        return True
    best = request.accept_mimetypes.best_match(
        ["application/problem+json", "application/json", "text/html"]
    )
    return best == "text/html" and request.accept_mimetypes["text/html"] > 0


def error_page(status: int, title: str, detail: str) -> tuple[str, int]:
    return (
        render_template("pages/error.html", status=status, title=title, detail=detail),
        status,
    )


def render_lifecycle_error(error: LifecycleError) -> tuple[str, int]:
    return error_page(status_of(error), error.title, error.detail)


def render_csrf_error(error: CSRFError) -> tuple[str, int]:
    return error_page(
        400,
        "The form has expired",
        "This form was refused because it did not carry a valid security token "
        "(the page may have been open for a long time, or the form came from another site). "
        "Go back, reload the page and try again.",
    )


def render_http_error(error: HTTPException) -> tuple[str, int]:
    status = error.code or 500
    title = _TITLES.get(status, error.name)
    detail = error.description or ""
    if status == 404 and "requested URL was not found" in detail:
        detail = "There is no page at this address. Check the link, or start again from the menu."
    return error_page(status, title, detail)


def render_unexpected(error: Exception) -> tuple[str, int]:
    if isinstance(error, HTTPException):
        return render_http_error(error)
    log.exception("unexpected error on %s %s", request.method, request.path, exc_info=error)
    return error_page(
        500,
        _TITLES[500],
        "The page could not be shown because of an error on our side. It has been logged; "
        "try again in a moment.",
    )


def register(bp: Blueprint) -> None:
    """Give a page blueprint its HTML error pages (the most specific handler wins)."""
    bp.register_error_handler(CSRFError, render_csrf_error)
    bp.register_error_handler(LifecycleError, render_lifecycle_error)
    bp.register_error_handler(HTTPException, render_http_error)
    bp.register_error_handler(Exception, render_unexpected)
