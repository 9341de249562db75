"""What ``lifecycle token`` needs, and no more: find the user, sign a token.

The command runs often and must answer at once, so it loads neither the ORM nor the web
app. With the SQLite database of development the user is looked up with the standard
library's ``sqlite3``; any other database goes through the usual engine.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

from memberships.tokens import development_token
from settings import Settings

_SQLITE_PREFIXES = ("sqlite:///", "sqlite+pysqlite:///")
_FIND_USER = "SELECT id FROM users WHERE id = ? OR email = ? ORDER BY id = ? DESC LIMIT 1"


def user_id_of(database_url: str, user_ref: str) -> str | None:
    """The id of the user ``user_ref`` names (an id or an e-mail), ``None`` if none does."""
    ref = (user_ref or "").strip().lower()
    for prefix in _SQLITE_PREFIXES:
        if database_url.startswith(prefix):
            return _sqlite_user_id(database_url.removeprefix(prefix), ref)
    return _engine_user_id(database_url, ref)


def _sqlite_user_id(path: str, ref: str) -> str | None:
    if not path or path == ":memory:" or not Path(path).exists():
        return None
    # Read-only: a token never changes the database, nor creates a missing file.
    with sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=30) as db:
        row = db.execute(_FIND_USER, (ref, ref, ref)).fetchone()
    return str(row[0]) if row else None


def _engine_user_id(database_url: str, ref: str) -> str | None:
    from store.database import make_engine, make_session_factory
    from store.queries import Directory

    engine = make_engine(database_url)
    try:
        with make_session_factory(engine)() as session:
            user = Directory(session).find_user(ref)
            return user.id if user else None
    finally:
        engine.dispose()


def issue_token(user_id: str, settings: Settings, ttl: timedelta) -> str:
    """A development token for ``user_id`` signed with ``JWT_SECRET`` (checked set)."""
    return development_token(
        user_id,
        settings.jwt_secret or "",
        ttl,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
