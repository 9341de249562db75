"""Bearer tokens: who is calling. Roles are not in the token; they come from the database.

Two ways to trust a token, chosen by the settings:

- ``JWT_SECRET`` set: HS256 tokens signed with that secret (development, tests,
  ``lifecycle token``);
- otherwise ``JWKS_URL``: RS256 tokens signed by the identity provider's keys.

Exactly one algorithm is accepted in each mode, so ``alg: none`` and algorithm
confusion (an HS256 token "signed" with the RSA public key) are refused. ``exp``
and ``sub`` are required; ``iss`` and ``aud`` are checked when ``JWT_ISSUER`` and
``JWT_AUDIENCE`` are set. ``sub`` is the user id.
"""

from __future__ import annotations

import warnings
from datetime import datetime, timedelta
from typing import Any

import jwt
from flask import g, request
from jwt.types import Options

from memberships.principal import Principal
from memberships.tokens import development_token
from settings import Settings
from web.errors import REALM, ProblemError

LEEWAY = timedelta(seconds=10)
# A user id is at most this long: the audit log's actor column (and no id is longer).
MAX_SUBJECT_LENGTH = 64
MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash


class InvalidToken(Exception):
    """The token is missing, malformed, expired, or not signed by a key this service trusts.

    ``reason`` is a short, safe sentence for the caller; nothing about the keys.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenSigningUnavailable(Exception):
    """Tokens can be issued only with ``JWT_SECRET`` set."""


WEAK_SECRET_REPORTED = "LIFECYCLE_WEAK_SECRET_REPORTED"
"""Set by a parent process (gunicorn's master, ``web/gunicorn_conf.py``) that has already
reported a weak secret for all its workers: ``create_app`` then does not repeat it."""


def weak_secret_warning(settings: Settings) -> str | None:
    """A sentence to report once when ``JWT_SECRET`` is too short for production, else ``None``.

    PyJWT warns about a short HMAC key on every encode and decode; a process reports it
    once at its composition point instead (and then calls ``silence_key_length_warnings``).
    """
    secret = settings.jwt_secret
    if secret and len(secret.encode()) < MIN_SECRET_BYTES:
        return (
            f"JWT_SECRET is {len(secret.encode())} bytes long: fine for development, too weak "
            f"for production (use at least {MIN_SECRET_BYTES} random bytes)."
        )
    return None


def silence_key_length_warnings() -> None:
    """Stop PyJWT's per-token warning about a short key (reported once already)."""
    warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)


def jwks_client_for(settings: Settings) -> jwt.PyJWKClient | None:
    """A key-caching JWKS client for ``settings.jwks_url`` (``None`` without one)."""
    if not settings.jwks_url:
        return None
    return jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300, timeout=5)


def verify_token(token: str, settings: Settings, jwks_client: jwt.PyJWKClient | None = None) -> str:
    """The user id (``sub``) of a valid token. Raises ``InvalidToken`` otherwise."""
    if not token:
        raise InvalidToken("No token was given.")
    options: Options = {
        "require": ["exp", "sub"],
        "verify_aud": settings.jwt_audience is not None,
        "verify_iss": settings.jwt_issuer is not None,
    }
    try:
        if settings.jwt_secret:
            key: Any = settings.jwt_secret
            algorithm = "HS256"
        elif settings.jwks_url or jwks_client is not None:
            client = jwks_client or jwks_client_for(settings)
            assert client is not None
            key = client.get_signing_key_from_jwt(token).key
            algorithm = "RS256"
        else:
            raise InvalidToken(
                "This service accepts no tokens: it has neither JWT_SECRET nor JWKS_URL set."
            )
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY,
            options=options,
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("The token has expired.") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken("The token is meant for another audience.") from None
    except jwt.InvalidIssuerError:
        raise InvalidToken("The token comes from an issuer this service does not trust.") from None
    except jwt.MissingRequiredClaimError as error:
        raise InvalidToken(f"The token has no {error.claim!r} claim.") from None
    except jwt.InvalidAlgorithmError:
        raise InvalidToken("The token is signed with an algorithm this service refuses.") from None
    except jwt.PyJWKClientError:
        raise InvalidToken("The token is not signed by a key this service knows.") from None
    except jwt.PyJWTError:
        raise InvalidToken("The token is malformed or its signature does not match.") from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidToken("The token's 'sub' claim is not a user id.")
    subject = subject.strip()
    # isprintable: no NUL, control character or unpaired surrogate reaches the audit log.
    if len(subject) > MAX_SUBJECT_LENGTH or not subject.isprintable():
        raise InvalidToken(
            f"The token's 'sub' claim is not a user id (printable, at most "
            f"{MAX_SUBJECT_LENGTH} characters)."
        )
    return subject


def issue_token(
    user_id: str, settings: Settings, ttl: timedelta, now: datetime | None = None
) -> str:
    """An HS256 token for ``user_id`` valid for ``ttl`` (development and tests).

    Raises ``TokenSigningUnavailable`` when ``JWT_SECRET`` is not set: with RS256 the
    identity provider, not this service, issues tokens.
    """
    if not settings.jwt_secret:
        raise TokenSigningUnavailable(
            "JWT_SECRET is not set: this service signs no tokens (the identity provider does)."
        )
    return development_token(
        user_id,
        settings.jwt_secret,
        ttl,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        now=now,
    )


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header, ``None`` when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authenticated_user_id(settings: Settings, jwks_client: Any = None) -> str | None:
    """The caller's user id when the request carries a valid token, else ``None``.

    Cached on ``g``: the rate limiter and the ``/v1`` guard both ask.
    """
    if "auth_user_id" not in g:
        token = bearer_token()
        try:
            g.auth_user_id = verify_token(token, settings, jwks_client) if token else None
            g.auth_error = None if token else "missing"
        except InvalidToken as error:
            g.auth_user_id = None
            g.auth_error = error.reason
    return g.auth_user_id  # type: ignore[no-any-return]


def require_principal(settings: Settings, jwks_client: Any = None) -> Principal:
    """The caller as a ``Principal``; raises a ``401`` problem with ``WWW-Authenticate``."""
    user_id = authenticated_user_id(settings, jwks_client)
    if user_id is not None:
        g.principal = Principal.user(user_id)
        return g.principal  # type: ignore[no-any-return]
    reason = g.get("auth_error")
    if reason == "missing":
        raise ProblemError(
            "authentication-required",
            "Send an access token: Authorization: Bearer <token>.",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
        )
    safe = str(reason).replace('"', "'")
    raise ProblemError(
        "invalid-token",
        str(reason),
        headers={
            "WWW-Authenticate": (
                f'Bearer realm="{REALM}", error="invalid_token", error_description="{safe}"'
            )
        },
    )
