"""``X-Request-ID``: accepted from the caller (or a proxy) when sane, else generated.

The id is echoed on every response, written into every audit row the request
causes (through the unit of work) and into problem details, so one id ties a
caller's report to the log and the audit trail.
"""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request
from flask.wrappers import Response

HEADER = "X-Request-ID"
# Fits the audit column (64) and keeps logs clean: no spaces, quotes or control characters.
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,64}$")


def _assign() -> None:
    given = request.headers.get(HEADER, "").strip()
    g.request_id = given if _ACCEPTABLE.match(given) else uuid.uuid4().hex


def _echo(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[HEADER] = request_id
    return response


def install(app: Flask) -> None:
    app.before_request(_assign)
    app.after_request(_echo)
