"""``Idempotency-Key`` on POSTs: a retry gets the first response back, not a second decision.

Before the view: claim the key (or replay what it answered the first time, with
``Idempotent-Replayed: true``). After the view: store the response, unless it is a
``5xx`` (then the claim is released, so a retry runs afresh). The request is
identified by a hash of its method, path and body (canonical JSON, so key order
and spacing do not matter); the same key with another request is a ``422``. A body
that does not parse claims no key: it is a ``400 malformed-json`` at once.
"""

from __future__ import annotations

import hashlib
import json
import re

from flask import g, request
from flask.wrappers import Response

from memberships import idempotency
from web.errors import ProblemError
from web.services import principal, services

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
_KEPT_HEADERS = ("Content-Type", "Location", "ETag")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


def request_hash() -> str:
    """The request's identity. A body that does not parse is refused here (``400
    malformed-json``, before any key is claimed), as the view would refuse it: corrected,
    the request may use the same key."""
    body = request.get_data(cache=True)
    if body:  # a body-less POST (leave, restore) may send nothing: b"" identifies it
        parsed = request.get_json(force=True)  # cached for the view
        body = json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _key() -> str | None:
    raw = request.headers.get(HEADER)
    if raw is None:
        return None
    key = raw.strip()
    if not key or len(key) > idempotency.MAX_KEY_LENGTH or not _PRINTABLE.match(key):
        raise ProblemError(
            "bad-request",
            f"{HEADER}: 1 to {idempotency.MAX_KEY_LENGTH} visible ASCII characters, "
            "for example a UUID.",
        )
    return key


def claim() -> Response | None:
    """Before a POST view: the stored response for a replay, or ``None`` to go on."""
    if request.method != "POST":
        return None
    key = _key()
    if key is None:
        return None
    s = services()
    with s.uow() as uow:
        stored = idempotency.claim_key(uow, s.clock, principal(), key, request_hash())
    if stored is None:
        g.idempotency_key = key
        return None
    g.idempotency_replayed = True
    response = Response(stored.body, status=stored.status_code)
    for name, value in stored.headers.items():
        response.headers[name] = value
    response.headers[REPLAYED] = "true"
    return response


def settle(response: Response) -> Response:
    """After a POST view: store its response for retries, or release the key on a 5xx."""
    key = g.pop("idempotency_key", None)
    if key is None:
        return response
    s = services()
    with s.uow() as uow:
        if response.status_code >= 500:
            idempotency.release_key(uow, principal(), key)
            return response
        stored = idempotency.StoredResponse(
            status_code=response.status_code,
            headers={k: v for k, v in response.headers.items() if k in _KEPT_HEADERS},
            body=response.get_data(as_text=True),
        )
        idempotency.remember_response(
            uow, principal(), key, stored, membership_id=g.get("membership_id")
        )
    return response
