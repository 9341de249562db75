"""What a member is told of changes to their memberships (notices, and their mail)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from store.transitions import Transition


def after_transition(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """The notices of the members whose memberships ``transition`` moved."""


def record_notice(
    session: Session,
    *,
    membership_id: str,
    kind: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
) -> None:
    """One notice for the member of ``membership_id`` that is not a transition (a
    removal request answered or overdue), in the caller's transaction."""
