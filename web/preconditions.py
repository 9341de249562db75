"""``ETag`` and ``If-Match``: a membership's version is its entity tag.

A client reads a membership (``ETag: "7"``), decides, and sends the decision with
``If-Match: "7"``; if anyone changed the membership in between, the use case
answers ``412 precondition-failed`` instead of acting on a state the client never
saw. ``If-Match: *`` (or no header) means "whatever the current version is".
"""

from __future__ import annotations

import re

from flask import request

from web.errors import ProblemError

_TAG = re.compile(r'^\s*(W/)?"([^"]*)"\s*$')
# Versions are positive 32-bit integers: a longer tag is none this service gave out.
_MAX_VERSION_DIGITS = 10


def etag(version: int) -> str:
    return f'"{version}"'


def expected_version() -> int | None:
    """The version ``If-Match`` asks for, ``None`` for no header or ``*``.

    A tag that is not a version this service gave out can never match, so it is
    ``-1`` (the use case then answers ``412``). Weak tags are refused: ``If-Match``
    compares strongly (RFC 9110 §13.1.1). Raises a ``400 bad-request`` problem for a
    list of tags or a malformed header.
    """
    raw = request.headers.get("If-Match")
    if raw is None or raw.strip() == "*":
        return None
    if "," in raw:
        raise ProblemError("bad-request", 'If-Match: give one entity tag, like "7", or *.')
    match = _TAG.match(raw)
    if match is None:
        raise ProblemError("bad-request", 'If-Match: an entity tag is quoted, like "7".')
    weak, value = match.groups()
    # isascii: str.isdigit also accepts "²" and other digits int() refuses or reads.
    if weak or not (value.isascii() and value.isdigit()) or len(value) > _MAX_VERSION_DIGITS:
        return -1
    return int(value)
