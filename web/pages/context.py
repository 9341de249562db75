"""What the page handlers need from the app: the API's own composition.

The pages use the same settings, clock, unit of work and token verification as
the ``/v1`` API (``web.services``, ``web.auth``), so a page and an API call on
the same data decide alike, and a token is trusted by the sign-in page exactly
when the API would trust it.
"""

from __future__ import annotations

import jwt

from memberships.clock import Clock
from settings import Settings
from store.unit_of_work import UnitOfWork
from web import auth
from web.services import services


def unit_of_work() -> UnitOfWork:
    return services().uow()


def clock() -> Clock:
    return services().clock


def settings() -> Settings:
    return services().settings


def token_sign_in_available() -> bool:
    current = settings()
    return bool(current.jwt_secret or current.jwks_url or services().jwks_client)


def verify_token(token: str) -> tuple[str, int | None]:
    """The user id of a token the API would accept, and its expiry (Unix time).

    Raises ``web.auth.InvalidToken``. The expiry is read only after the signature
    and claims have been verified by ``web.auth.verify_token``.
    """
    user_id = auth.verify_token(token, settings(), services().jwks_client)
    claims = jwt.decode(token, options={"verify_signature": False})
    expires = claims.get("exp")
    return user_id, int(expires) if isinstance(expires, int | float) else None
