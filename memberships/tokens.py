"""Signing a development token for a principal (HS256): PyJWT only, nothing else loaded.

``web.auth.issue_token`` signs with the settings' secret, issuer and audience through
this; ``lifecycle token`` calls it directly, so that it starts without the web app.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt


def development_token(
    user_id: str,
    secret: str,
    ttl: timedelta,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    now: datetime | None = None,
) -> str:
    """An HS256 token whose ``sub`` is ``user_id``, valid for ``ttl``."""
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {"sub": user_id, "iat": issued, "exp": issued + ttl}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")
