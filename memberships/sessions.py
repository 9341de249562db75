"""Page sessions that sign-out really ends.

A session cookie is signed, so the server cannot take it back once given out; what
the server keeps is a per-user *session generation*. Sign-in writes the current
generation into the session; every page request compares it with the database; sign-out
advances it. A cookie copied before sign-out then carries an old generation and is
refused, on every machine at once. Signing out ends all of the user's page sessions,
on every device: the one way to be sure a copied cookie is dead.
"""

from __future__ import annotations

from store.models import User
from store.unit_of_work import UnitOfWork


def session_generation(uow: UnitOfWork, user_id: str) -> int | None:
    """The user's current session generation, ``None`` for an unknown user."""
    user = uow.session.get(User, user_id)
    return None if user is None else user.session_generation


def end_sessions(uow: UnitOfWork, user_id: str) -> None:
    """End every page session of ``user_id`` started before now (commits)."""
    user = uow.session.get(User, user_id)
    if user is None:
        return
    # Computed by the database, so two sign-outs at once both advance it.
    user.session_generation = User.session_generation + 1  # type: ignore[assignment]  # an SQL expression, evaluated by the UPDATE
    uow.commit()
