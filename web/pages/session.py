"""Who is signed in to the pages: Flask's signed session cookie holds the user id.

The cookie is HttpOnly and SameSite=Lax, and Secure outside development (see
``web.pages.configure_session``); every form also carries a CSRF token. Roles are
read from the database on every request (``memberships.accounts.account_of``),
so the session holds nothing but who the user is, until when, and the user's session
generation at sign-in: sign-out advances it in the database, so a copy of the cookie
taken before sign-out opens nothing afterwards (``memberships.sessions``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import g, redirect, request, session, url_for

from memberships.accounts import AccountView, account_of
from memberships.errors import NotFound
from memberships.principal import Principal
from memberships.sessions import end_sessions, session_generation
from web.pages.context import clock, unit_of_work

USER_KEY = "user_id"
UNTIL_KEY = "signed_in_until"
GENERATION_KEY = "session_generation"
# Written for a user the database does not know: it matches no generation.
NO_GENERATION = -1
# A development sign-in (no token, so no expiry of its own) lasts a working day.
DEV_SESSION_LENGTH = timedelta(hours=8)

View = TypeVar("View", bound=Callable[..., Any])


def sign_in(user_id: str, until: datetime) -> None:
    """Start a fresh session: clearing first means no value survives from before sign-in."""
    with unit_of_work() as uow:
        generation = session_generation(uow, user_id)
    session.clear()
    session[USER_KEY] = user_id
    session[UNTIL_KEY] = int(until.timestamp())
    session[GENERATION_KEY] = NO_GENERATION if generation is None else generation


def sign_out() -> None:
    """Forget this browser's session (the cookie); see ``end_session`` for sign-out."""
    session.clear()


def end_session() -> None:
    """Sign out: end this user's sessions server-side, then forget the cookie.

    Only a session that is still current advances the generation: replaying an old
    cookie at the sign-out form ends nobody's newer sessions.
    """
    user_id = signed_in_user_id()
    if user_id is not None:
        with unit_of_work() as uow:
            if session_generation(uow, user_id) == session.get(GENERATION_KEY):
                end_sessions(uow, user_id)
    sign_out()


def signed_in_user_id() -> str | None:
    user_id = session.get(USER_KEY)
    until = session.get(UNTIL_KEY)
    if not isinstance(user_id, str) or not isinstance(until, int):
        return None
    if clock()().timestamp() >= until:
        sign_out()
        return None
    return user_id


def principal() -> Principal:
    """The signed-in principal; only inside a view wrapped by ``requires_sign_in``."""
    found: Principal = g.principal
    return found


def account() -> AccountView:
    found: AccountView = g.account
    return found


def safe_next(target: str | None) -> str | None:
    """A same-site path to return to after sign-in, or ``None`` (never an open redirect)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target:
        return None
    return target


def requires_sign_in(view: View) -> View:
    """Send an anonymous visitor to the sign-in page, then back here; load the account."""

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        user_id = signed_in_user_id()
        if user_id is None:
            return redirect(url_for("pages_account.sign_in", next=request.full_path.rstrip("?")))
        try:
            with unit_of_work() as uow:
                if session_generation(uow, user_id) != session.get(GENERATION_KEY):
                    # Signed out since (here or elsewhere): this cookie is dead.
                    sign_out()
                    return redirect(url_for("pages_account.sign_in"))
                g.account = account_of(uow, Principal.user(user_id))
        except NotFound:
            # The user was deleted after signing in: end the session rather than act for nobody.
            sign_out()
            return redirect(url_for("pages_account.sign_in"))
        g.principal = Principal.user(user_id)
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]  # same signature as the wrapped view
