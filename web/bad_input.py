"""Input no part of the service can store is refused at the edge, as a ``400``.

PostgreSQL refuses the NUL character (U+0000) in text, and no database driver encodes
an unpaired UTF-16 surrogate (U+D800..U+DFFF, which JSON's ``\\ud800`` escapes can
make). Such a value reaching a query was a ``500``; here it is refused before any view
runs, wherever it comes from: a path segment, a query or form value, or a string
(value or key) of a JSON body. A JSON body nested deeper than ``MAX_JSON_DEPTH`` is
refused too (no operation takes more than a few levels, and a deep one exhausts
Python's stack while parsing): ``400 malformed-json``.

The headers the service reads are checked where they are read (``If-Match``,
``Idempotency-Key``, ``X-Request-ID``, the token's ``sub``).
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request
from werkzeug.exceptions import BadRequest

MAX_JSON_DEPTH = 32
TOO_DEEP = f"it is nested more than {MAX_JSON_DEPTH} levels deep"
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class UnstorableText(BadRequest):
    """A value holds a NUL character or an unpaired surrogate."""


def storable(text: str) -> bool:
    """Whether every database the service runs on can store ``text``."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # an unpaired surrogate
        return False
    return True


def _refuse(where: str) -> UnstorableText:
    return UnstorableText(
        f"The {where} holds a NUL character or an unpaired surrogate, which this "
        "service does not accept."
    )


def check_request() -> None:
    """Refuse a request whose path, query or form holds unstorable text."""
    if not storable(request.path):
        raise _refuse("path")
    for key, value in request.args.items(multi=True):
        if not (storable(key) and storable(value)):
            raise _refuse("query")
    if request.mimetype in _FORMS:
        for key, value in request.form.items(multi=True):
            if not (storable(key) and storable(value)):
                raise _refuse("form")


def check_json(value: Any) -> None:
    """Raise ``UnstorableText`` for a string that cannot be stored anywhere in ``value``,
    ``ValueError`` (malformed JSON) for nesting deeper than ``MAX_JSON_DEPTH``.

    Iterative, so a deep value cannot exhaust the stack here either.
    """
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, str):
            if not storable(item):
                raise _refuse("JSON body")
        elif isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(TOO_DEEP)
            if isinstance(item, dict):
                pending.extend((key, depth) for key in item)
                pending.extend((child, depth + 1) for child in item.values())
            else:
                pending.extend((child, depth + 1) for child in item)


def install(app: Flask) -> None:
    """Check every request of ``app`` before any view (and before authentication).

    JSON bodies are checked by ``web.ApiRequest.get_json`` (``check_json``).
    """
    app.before_request(check_request)
