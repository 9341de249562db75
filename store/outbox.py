"""The outbox of events: what every state change and organization change tells the
outside, written in the change's own transaction (``store.models.Event``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from store.transitions import Transition


def after_transition(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """The events of the memberships ``moved`` by ``transition`` (in its transaction)."""


def record_event(
    session: Session,
    *,
    type: str,
    organization_id: str,
    membership_id: str | None,
    occurred_at: datetime,
    data: Mapping[str, Any],
) -> None:
    """One event that is not a membership transition (an organization's settings, a
    removal request), in the caller's transaction."""
