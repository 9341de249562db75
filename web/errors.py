"""Every error as RFC 9457 ``application/problem+json``: the one place errors meet HTTP.

Each error code has a stable ``type`` URI, ``PROBLEM_TYPE_PREFIX + code``. They are
tag URIs (RFC 4151): permanent names, not web addresses, so they never break when
the service moves; ``docs/errors.md`` documents each one. ``STATUS`` maps every
code of ``memberships.errors`` (and this edge's own codes) to its HTTP status; an
error class added later inherits its parent's status until it gets its own line.
Unexpected exceptions become a ``500 internal-error`` whose body says nothing of
the cause (the log has it, under the request id).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from http import HTTPStatus
from typing import Any

from apiflask import APIFlask
from apiflask.exceptions import HTTPError
from flask import current_app, g, request
from flask.wrappers import Response
from werkzeug.exceptions import BadRequest, HTTPException, TooManyRequests

from memberships.errors import LeaveDenied, LifecycleError

log = logging.getLogger(__name__)

PROBLEM_TYPE_PREFIX = "tag:membership-lifecycle.example,2026:problem:"
PROBLEM_JSON = "application/problem+json"

# code -> HTTP status. Titles of the domain codes come from their classes, the edge's from
# EDGE_TITLES.
STATUS: dict[str, int] = {
    # memberships.errors
    "lifecycle-error": 400,
    "invalid-input": 422,
    "not-found": 404,
    "already-exists": 409,
    "forbidden": 403,
    "leave-denied": 403,
    "home-organization": 403,
    "account-disabled": 403,
    "leave-disabled": 403,
    "privacy-profile-required": 409,
    "transition-not-allowed": 409,
    "conflict": 409,
    "precondition-failed": 412,
    "restore-window-closed": 409,
    "invitation-closed": 409,
    "leave-allowed": 409,
    "removal-request-open": 409,
    "removal-request-closed": 409,
    # memberships.idempotency
    "idempotency-key-reused": 422,
    "idempotency-key-in-use": 409,
    # this edge
    "malformed-json": 400,
    "bad-request": 400,
    "authentication-required": 401,
    "invalid-token": 401,
    "method-not-allowed": 405,
    "payload-too-large": 413,
    "unsupported-media-type": 415,
    "rate-limited": 429,
    "internal-error": 500,
    "not-ready": 503,
}

EDGE_TITLES: dict[str, str] = {
    "malformed-json": "The request body is not valid JSON",
    "bad-request": "The request is malformed",
    "authentication-required": "Sign-in required",
    "invalid-token": "The access token is not valid",
    "not-found": "Not found",
    "method-not-allowed": "This method is not allowed here",
    "payload-too-large": "The request body is too large",
    "unsupported-media-type": "The request body must be JSON",
    "invalid-input": "The input is not valid",
    "rate-limited": "Too many requests",
    "internal-error": "Something went wrong on our side",
    "not-ready": "The service is not ready",
}

_WERKZEUG_CODES = {
    400: "bad-request",
    404: "not-found",
    405: "method-not-allowed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    429: "rate-limited",
}

REALM = "membership-lifecycle"


class MalformedJSON(BadRequest):
    """The body was sent as JSON but does not parse."""


class TooManyRefusals(TooManyRequests):
    """The caller's audited refusals filled their window (``web.rate_limits``)."""

    def __init__(self, retry_after: int, limit: str) -> None:
        super().__init__(
            f"Too many refused requests: at most {limit} refusals are written to the "
            f"audit log for one caller. Retry after {retry_after} seconds.",
            retry_after=retry_after,
        )
        self.retry_after_seconds = retry_after


class ProblemError(Exception):
    """An error of this edge (not of the domain): a code, a detail, extra members, headers."""

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_type(code: str) -> str:
    return PROBLEM_TYPE_PREFIX + code


def status_of(error: LifecycleError) -> int:
    """The status of the nearest class in ``error``'s hierarchy that has one."""
    for cls in type(error).__mro__:
        code = getattr(cls, "code", None)
        if code in STATUS:
            return STATUS[code]
    return 400


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {_camel(str(k)): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_ready(v) for v in value]
    return value


def problem_response(
    code: str | None,
    status: int,
    title: str,
    detail: str,
    *,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    """A problem+json response; ``code=None`` gives ``type: about:blank`` (RFC 9457 §4.2.1)."""
    body: dict[str, Any] = {
        "type": problem_type(code) if code else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.path,
    }
    request_id = g.get("request_id")
    if request_id:
        body["requestId"] = request_id
    for key, value in extra.items():
        if value is not None:
            body[_camel(key)] = _json_ready(value)
    response = current_app.response_class(
        json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_JSON
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def edge_problem(
    code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    """A problem response for one of this edge's own codes."""
    return problem_response(
        code, STATUS[code], EDGE_TITLES.get(code, code), detail, headers=headers, **extra
    )


def _lifecycle_error(error: LifecycleError) -> Response:
    extra = dict(error.extra)
    if isinstance(error, LeaveDenied):
        extra["reason"] = error.code
        extra["contacts"] = extra.get("contacts") or {}
    return problem_response(error.code, status_of(error), error.title, error.detail, **extra)


def _problem_error(error: ProblemError) -> Response:
    return edge_problem(error.code, error.detail, headers=error.headers, **error.extra)


def _validation_error(error: HTTPError) -> Response:
    # APIFlask gives {location: {field.path: [messages]}}.
    errors = [
        {"location": location, "field": field, "message": message}
        for location, fields in (error.detail or {}).items()
        for field, messages in fields.items()
        for message in messages
    ]
    fields = ", ".join(sorted({e["field"] for e in errors})) or "the request"
    return edge_problem("invalid-input", f"Check {fields}.", errors=errors)


def _is_validation_error(error: HTTPError) -> bool:
    """APIFlask's input validation failure, by its public marks: the configured status and
    a ``{location: {field: [messages]}}`` detail (the app itself never raises HTTPError)."""
    return (
        error.status_code == current_app.config["VALIDATION_ERROR_STATUS_CODE"]
        and isinstance(error.detail, dict)
        and all(isinstance(fields, dict) for fields in error.detail.values())
    )


def _apiflask_http_error(error: HTTPError) -> Response:
    if _is_validation_error(error):
        return _validation_error(error)
    headers = {str(k): str(v) for k, v in dict(error.headers or {}).items()}  # type: ignore[arg-type]  # APIFlask types headers loosely; they are str pairs
    return _http_status(error.status_code, error.message or "", headers)


def _http_status(status: int, detail: str, headers: dict[str, str]) -> Response:
    code = _WERKZEUG_CODES.get(status)
    if code is not None:
        return edge_problem(code, detail, headers=headers)
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    return problem_response(None, status, title, detail, headers=headers)


def _werkzeug_error(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, TooManyRefusals):
        return edge_problem(
            "rate-limited",
            error.description or "",
            headers={"Retry-After": str(error.retry_after_seconds)},
        )
    if status == 429:
        return _rate_limited()
    if status == 500:
        return _internal_error(error)
    if status > 500:  # e.g. 501: keep the status, say nothing of the cause
        log.error("HTTP %s (request %s)", status, g.get("request_id"), exc_info=error)
        return _http_status(status, "The service could not carry out the request.", {})
    headers = {k: v for k, v in error.get_headers() if k.lower() == "allow"}
    if isinstance(error, MalformedJSON):
        return edge_problem("malformed-json", error.description or "The body does not parse.")
    detail = error.description or ""
    if status == 404:
        detail = f"There is nothing at {request.path}."
    elif status == 405:
        detail = f"{request.method} is not allowed on {request.path}."
    return _http_status(status, detail, headers)


def _rate_limited() -> Response:
    limiter = current_app.extensions.get("lifecycle.limiter")
    current = limiter.current_limit if limiter is not None else None
    retry_after = 1
    if current is not None:
        try:
            retry_after = max(1, int(current.reset_at - time.time()))
        except Exception:  # the storage vanished between the hit and now
            log.warning("could not read the rate limit window", exc_info=True)
    return edge_problem(
        "rate-limited",
        f"Too many requests: the limit is {current.limit if current else 'exceeded'}. "
        f"Retry after {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)},
    )


def _internal_error(error: BaseException) -> Response:
    # The cause goes to the log, under the request id; the caller gets only the id.
    log.error("unexpected error (request %s)", g.get("request_id"), exc_info=error)
    return edge_problem(
        "internal-error",
        "The request failed unexpectedly. Retry later; if it keeps failing, tell the "
        "operators the request id.",
    )


def _unexpected(error: Exception) -> Response:
    return _internal_error(error)


def register_error_handlers(app: APIFlask) -> None:
    """Route every error of every kind to its problem response."""
    app.register_error_handler(LifecycleError, _lifecycle_error)
    app.register_error_handler(ProblemError, _problem_error)
    app.register_error_handler(HTTPError, _apiflask_http_error)
    app.register_error_handler(HTTPException, _werkzeug_error)
    app.register_error_handler(Exception, _unexpected)
