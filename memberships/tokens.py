"""Signing a development token for a principal (HS256) with the standard library alone.

``web.auth.issue_token`` signs with the settings' secret, issuer and audience through
this; ``lifecycle token`` calls it directly, so that it starts without the web app. An
HS256 token is two base64url JSON objects and an HMAC-SHA256 of them: PyJWT (which
verifies every token, ``web.auth``) is not needed to make one, and importing it costs
``lifecycle token`` more than everything else it does (it loads ``cryptography``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

_HEADER = {"alg": "HS256", "typ": "JWT"}


def _segment(value: dict[str, Any]) -> str:
    data = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def development_token(
    user_id: str,
    secret: str,
    ttl: timedelta,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    now: datetime | None = None,
) -> str:
    """An HS256 token whose ``sub`` is ``user_id``, valid for ``ttl`` (times in whole
    seconds since the epoch, as RFC 7519 has them)."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": user_id,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ttl).timestamp()),
    }
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    signing_input = f"{_segment(_HEADER)}.{_segment(claims)}"
    signature = hmac.new(secret.encode(), signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode("ascii")
