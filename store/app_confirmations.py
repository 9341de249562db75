"""Connected apps' confirmations of a membership's data removal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from store.transitions import Transition


def after_transition(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """For memberships entering data removal: the apps that must confirm it."""
