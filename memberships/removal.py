"""Data removal: erase a purge-pending membership's data in bounded, committed batches.

Each batch is its own transaction and records progress on the membership, so a
crash mid-way resumes where it stopped. When every remover reports nothing
left, ``finish_removal`` turns the membership into a tombstone.

Removers are pluggable, one per data store: a deployment adds its own by
passing them in (``workers`` builds the list at its composition point).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from memberships.clock import Clock
from memberships.decisions import apply_event, deny
from memberships.errors import TransitionNotAllowed
from memberships.timers import WORKER
from statemachines.membership import MembershipState
from store.models import Grant, IdempotencyKey, MemberData, Membership
from store.unit_of_work import UnitOfWork


class Remover(Protocol):
    """Erases one data store's records of a membership, at most ``limit`` per call."""

    @property
    def name(self) -> str:
        """Names the data store in progress reports and errors."""
        ...

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        """Delete up to ``limit`` records; return how many were deleted (0: none left)."""
        ...

    def remaining(self, session: Session, membership_id: str) -> int:
        """How many records are left (used to prove the removal complete)."""
        ...


@dataclass(frozen=True)
class TableRemover:
    """Deletes rows of one of this service's own tables keyed by ``membership_id``."""

    name: str
    model: type[Grant] | type[MemberData] | type[IdempotencyKey]

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        ids = select(self.model.id).where(self.model.membership_id == membership_id).limit(limit)
        result = session.execute(
            delete(self.model)
            .where(self.model.id.in_(ids.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # DELETE result

    def remaining(self, session: Session, membership_id: str) -> int:
        found = session.scalar(
            select(self.model.id).where(self.model.membership_id == membership_id).limit(1)
        )
        return 0 if found is None else 1


BUILT_IN_REMOVERS: tuple[Remover, ...] = (
    TableRemover("grants", Grant),
    TableRemover("member-data", MemberData),
    # Responses stored for Idempotency-Key replays can hold the membership's e-mail and name.
    TableRemover("idempotency-keys", IdempotencyKey),
)


@dataclass(frozen=True, slots=True)
class RemovalProgress:
    membership_id: str
    state: str | None
    removed_now: int
    removed_total: int

    @property
    def done(self) -> bool:
        """Nothing more to do: purged, or not a purge-pending membership."""
        return self.state != MembershipState.PURGE_PENDING.value


def remove_data_batch(
    uow: UnitOfWork,
    clock: Clock,
    membership_id: str,
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> RemovalProgress:
    """Erase one bounded batch and commit it; when nothing is left, finish the removal.

    Idempotent: a membership that is not ``purge-pending`` is left as it is.
    """
    now = clock()
    membership = uow.session.get(Membership, membership_id)
    if membership is None or membership.state != MembershipState.PURGE_PENDING:
        return RemovalProgress(
            membership_id,
            membership.state if membership else None,
            0,
            membership.removed_rows if membership else 0,
        )
    limit = uow.policy.removal_batch_size
    removed = 0
    for remover in removers:
        removed += remover.remove_batch(uow.session, membership_id, limit - removed)
        if removed >= limit:
            break
    if removed:
        uow.session.execute(
            update(Membership)
            .where(
                Membership.id == membership_id, Membership.state == MembershipState.PURGE_PENDING
            )
            .values(removed_rows=Membership.removed_rows + removed, last_progress_at=now)
            .execution_options(synchronize_session=False)
        )
        uow.commit()
        uow.session.refresh(membership)
        return RemovalProgress(membership_id, membership.state, removed, membership.removed_rows)
    finish_removal(uow, clock, membership_id, removers)
    return RemovalProgress(membership_id, MembershipState.PURGED.value, 0, membership.removed_rows)


def finish_removal(
    uow: UnitOfWork,
    clock: Clock,
    membership_id: str,
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> None:
    """``purge-pending`` → ``purged``: only when no remover has anything left.

    Erases the personal fields in the same transaction; the tombstone keeps ids,
    states and timestamps. Raises ``TransitionNotAllowed`` while data remains (audited,
    like every refused decision).
    """
    now = clock()
    membership = uow.session.get(Membership, membership_id)
    if membership is None or membership.state != MembershipState.PURGE_PENDING:
        return
    left = [r.name for r in removers if r.remaining(uow.session, membership_id)]
    if left:
        deny(
            uow,
            now,
            WORKER,
            "finish_removal",
            TransitionNotAllowed(f"Data remains in: {', '.join(left)}.", remaining=left),
            organization_id=membership.organization_id,
            membership_id=membership.id,
            from_state=membership.state,
        )
    apply_event(uow, now, WORKER, membership, "finish_removal")
    uow.commit()


def remove_all_data(
    uow: UnitOfWork,
    clock: Clock,
    membership_id: str,
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> RemovalProgress:
    """Run batches until the membership is purged (CLI and tests; workers go batch by batch)."""
    while True:
        progress = remove_data_batch(uow, clock, membership_id, removers)
        if progress.done:
            return progress
