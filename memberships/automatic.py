"""What the service does by itself: carry out an accepted leave, end the retention period.

These are called by workers with an id. They are idempotent: when the membership
is no longer in the state the work starts from, they change nothing.
"""

from __future__ import annotations

from memberships.clock import Clock
from memberships.decisions import apply_event
from memberships.principal import Principal
from memberships.views import MembershipView
from statemachines.membership import MembershipState, retention_expired
from store.models import Membership
from store.unit_of_work import UnitOfWork

WORKER = Principal(id="worker", is_system=True)


def _load(uow: UnitOfWork, membership_id: str) -> Membership | None:
    return uow.memberships.get(membership_id)


def complete_leave(uow: UnitOfWork, clock: Clock, membership_id: str) -> MembershipView | None:
    """``leave-pending`` → ``soft-deleted`` (B2B collaboration; purge due after the retention
    period) or → ``purge-pending`` (B2B direct connect; data removal starts now).

    Returns ``None`` when there was nothing to do (unknown id, or already carried out).
    """
    membership = _load(uow, membership_id)
    if membership is None or membership.state != MembershipState.LEAVE_PENDING:
        return None
    apply_event(uow, clock(), WORKER, membership, "complete_leave")
    uow.commit()
    return MembershipView.of(membership)


def expire_retention(uow: UnitOfWork, clock: Clock, membership_id: str) -> MembershipView | None:
    """``soft-deleted`` → ``purge-pending`` once ``purge_due_at`` has passed; else nothing."""
    now = clock()
    membership = _load(uow, membership_id)
    if membership is None or not retention_expired(membership.state, membership.purge_due_at, now):
        return None
    apply_event(uow, now, WORKER, membership, "expire_retention")
    uow.commit()
    return MembershipView.of(membership)
