"""Connected apps' confirmations of a membership's data removal.

When memberships enter ``purge-pending``, every enabled endpoint of their organization
with ``confirms_removal`` gets an open confirmation row (``RemovalAppConfirmation``),
in the transaction of the change: the apps as of the moment removal started. The
membership is purged only once every row is confirmed (``memberships.removal``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from statemachines.membership import MembershipState
from store import webhook_deliveries

if TYPE_CHECKING:
    from store.transitions import Transition


def after_transition(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """For memberships entering data removal: the apps that must confirm it."""
    if transition.to_state != MembershipState.PURGE_PENDING.value:
        return
    webhook_deliveries.add_confirmations(session, transition.now, moved)
