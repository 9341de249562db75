"""Members' removal requests: what the store does to them when memberships move."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from store.transitions import Transition


def after_transition(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """Open removal requests of the memberships ``moved`` by ``transition``."""
