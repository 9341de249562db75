"""The work a message asks for, one membership at a time, safe to receive twice.

Each function takes the membership's row lock first (PostgreSQL ``FOR UPDATE``;
SQLite's ``BEGIN IMMEDIATE`` already serializes writers), then calls the use
case, which does nothing when the work is already done. So two deliveries of the
same message, or a re-driven message racing the original, run one after the
other: the second finds the work done instead of losing a compare-and-set and
leaving a denied ``conflict`` in the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from memberships import removal, timers
from memberships.clock import Clock
from memberships.removal import BUILT_IN_REMOVERS, RemovalProgress, Remover
from memberships.views import MembershipView
from store.models import Membership
from store.unit_of_work import UnitOfWork


def lock_membership(uow: UnitOfWork, membership_id: str) -> bool:
    """Lock the membership's row for this transaction; ``False`` when there is none."""
    found = uow.session.scalar(
        select(Membership.id).where(Membership.id == membership_id).with_for_update()
    )
    return found is not None


def carry_out_leave(uow: UnitOfWork, clock: Clock, membership_id: str) -> MembershipView | None:
    """The ``complete_leave`` message: see ``memberships.timers.complete_leave``.

    Returns ``None`` when there was nothing to do.
    """
    if not lock_membership(uow, membership_id):
        return None
    return timers.complete_leave(uow, clock, membership_id)


def remove_next_batch(
    uow: UnitOfWork,
    clock: Clock,
    membership_id: str,
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> RemovalProgress:
    """The ``remove_data`` message: one committed batch, or the finish when nothing is left
    (see ``memberships.removal.remove_data_batch``). ``progress.done`` says whether another
    message is needed. Raises ``TransitionNotAllowed`` when a remover still reports data
    but deletes none (a broken remover: retried, recorded, and visible to operators).
    """
    lock_membership(uow, membership_id)
    return removal.remove_data_batch(uow, clock, membership_id, removers)
