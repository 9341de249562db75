"""Page sessions that sign-out really ends.

A session cookie is signed, so the server cannot take it back once given out; what
the server keeps is a per-user *session generation*. Sign-in writes the current
generation into the session; every page request compares it with the database; sign-out
advances it. A cookie copied before sign-out then carries an old generation and is
refused, on every machine at once. Signing out ends all of the user's page sessions,
on every device: the one way to be sure a copied cookie is dead.
"""

from __future__ import annotations

from store.unit_of_work import UnitOfWork


def session_generation(uow: UnitOfWork, user_id: str) -> int | None:
    """The user's current session generation, ``None`` for an unknown user."""
    return uow.accounts.session_generation(user_id)


def end_sessions(uow: UnitOfWork, user_id: str) -> None:
    """End every page session of ``user_id`` started before now (commits)."""
    if uow.accounts.end_sessions(user_id):
        uow.commit()
