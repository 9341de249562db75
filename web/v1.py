"""What every ``/v1`` operation goes through before and after its view.

In order: the caller must be signed in (``401`` otherwise), a body must be JSON
(``415``), and a POST's ``Idempotency-Key`` is claimed or replayed; afterwards the
response is stored for that key. The views themselves only parse, call one use
case and serialize.
"""

from __future__ import annotations

from apiflask import APIBlueprint
from flask import request

from web import idempotency
from web.auth import require_principal
from web.errors import ProblemError
from web.services import services

PREFIX = "/v1"
_BODY_METHODS = ("POST", "PUT", "PATCH", "DELETE")


def _authenticate() -> None:
    s = services()
    require_principal(s.settings, s.jwks_client)


def _require_json_body() -> None:
    if request.method not in _BODY_METHODS:
        return
    has_body = bool(request.content_length) or "chunked" in request.headers.get(
        "Transfer-Encoding", ""
    )
    if has_body and not request.is_json:
        raise ProblemError(
            "unsupported-media-type",
            f"Send the body as application/json, not {request.mimetype or 'untyped data'}.",
        )


def blueprint(name: str, import_name: str, tag: str) -> APIBlueprint:
    """A ``/v1`` blueprint with the guards above installed."""
    bp = APIBlueprint(name, import_name, url_prefix=PREFIX, tag=tag)
    bp.before_request(_authenticate)
    bp.before_request(_require_json_body)
    bp.before_request(idempotency.claim)
    bp.after_request(idempotency.settle)
    return bp
