"""Accounts, sign-in sessions and API tokens (``uow.accounts``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select

from store.models import Membership, User
from store.repository import Repository


def _can_sign_in_as() -> Select[User]:
    """Users the development sign-in offers: enabled, not disabled at home, not erased."""
    disabled_at_home = (
        select(Membership.id)
        .where(
            Membership.user_id == User.id,
            Membership.organization_id == User.home_organization_id,
            Membership.state != "purged",
            Membership.enabled.is_(False),
        )
        .exists()
    )
    return select(User).where(User.enabled.is_(True), User.email.is_not(None), ~disabled_at_home)


class Accounts(Repository):
    """Accounts, sign-in sessions and API tokens (``uow.accounts``)."""

    def users_to_sign_in_as(self, limit: int) -> Sequence[User]:
        """The first ``limit`` users the development sign-in offers, by e-mail."""
        return self.session.scalars(_can_sign_in_as().order_by(User.email).limit(limit)).all()

    def may_sign_in_as(self, user_id: str) -> bool:
        """Whether the development sign-in offers this user (what it would list)."""
        found = self.session.scalar(_can_sign_in_as().where(User.id == user_id))
        return found is not None

    def session_generation(self, user_id: str) -> int | None:
        """The user's current session generation, ``None`` for an unknown user."""
        user = self.session.get(User, user_id)
        return None if user is None else user.session_generation

    def end_sessions(self, user_id: str) -> bool:
        """Advance the user's session generation (computed by the database at the next flush,
        so two sign-outs at once both advance it); ``False`` for an unknown user."""
        user = self.session.get(User, user_id)
        if user is None:
            return False
        user.session_generation = User.session_generation + 1  # type: ignore[assignment]  # an SQL expression, evaluated by the UPDATE
        return True
