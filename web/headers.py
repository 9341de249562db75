"""Security headers on every response: what a browser may load, frame and send along.

- ``Content-Security-Policy``: the pages run only the service's own script and style
  (``web/static``: no inline script, no inline style, nothing from elsewhere), submit
  forms only to the service, and may not be framed (``frame-ancestors 'none'``). JSON,
  problems and files get ``default-src 'none'``: a browser that opens one runs nothing.
  The API document's page (``/docs``, Swagger UI, ``web/docs.py``) loads its script,
  style and icon files from this origin only and has no inline script; Swagger UI sets
  inline styles, so its page alone allows those.
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``.
- ``X-Content-Type-Options: nosniff``: a response is what its ``Content-Type`` says.
- ``Referrer-Policy: no-referrer``: no page address (an organization, a membership id)
  leaves with a link.

A view that sets one of these itself keeps its own.
"""

from __future__ import annotations

from flask import Flask, Response, request

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
DATA_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
DOCS_PATH = "/docs"

HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def policy_for(path: str, mimetype: str | None) -> str:
    """The Content-Security-Policy of a response to ``path`` of type ``mimetype``."""
    if path == DOCS_PATH:
        return DOCS_POLICY
    if mimetype == "text/html":
        return PAGE_POLICY
    return DATA_POLICY


def _add_headers(response: Response) -> Response:
    response.headers.setdefault(
        "Content-Security-Policy", policy_for(request.path, response.mimetype)
    )
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def install(app: Flask) -> None:
    """Add the headers to every response of ``app``, errors included."""
    app.after_request(_add_headers)
