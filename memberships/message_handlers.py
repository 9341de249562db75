"""The work a message asks for, safe to receive twice.

Each function takes the membership's row lock first (PostgreSQL ``FOR UPDATE``;
SQLite's ``BEGIN IMMEDIATE`` already serializes writers), then calls the use
case, which does nothing when the work is already done. So two deliveries of the
same message, or a re-driven message racing the original, run one after the
other: the second finds the work done instead of losing a compare-and-set and
leaving a denied ``conflict`` in the audit log.

A chunk of memberships (``remove_data_many``) is locked by the use case itself,
``FOR UPDATE SKIP LOCKED``: a duplicate message skips what the first one holds
rather than waiting for it, and nothing it skips is lost (the holder finishes it,
or, if the holder dies, the sweep re-drives it after ``redrive_after``).
"""

from __future__ import annotations

from collections.abc import Sequence

from memberships import automatic, removal
from memberships.clock import Clock
from memberships.failures import MAX_ERROR_LENGTH
from memberships.removal import BUILT_IN_REMOVERS, ChunkProgress, RemovalProgress, Remover
from memberships.views import MembershipView
from store.unit_of_work import UnitOfWork


def lock_membership(uow: UnitOfWork, membership_id: str) -> bool:
    """Lock the membership's row for this transaction; ``False`` when there is none."""
    return uow.batches.lock_membership(membership_id)


def carry_out_leave(uow: UnitOfWork, clock: Clock, membership_id: str) -> MembershipView | None:
    """The ``complete_leave`` message: see ``memberships.automatic.complete_leave``.

    Returns ``None`` when there was nothing to do.
    """
    if not lock_membership(uow, membership_id):
        return None
    return automatic.complete_leave(uow, clock, membership_id)


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


def remove_next_chunk_batch(
    uow: UnitOfWork,
    clock: Clock,
    membership_ids: Sequence[str],
    removers: Sequence[Remover] = BUILT_IN_REMOVERS,
) -> ChunkProgress:
    """The ``remove_data_many`` message: one committed batch across the chunk, finishing
    every membership it finds drained (see ``memberships.removal.remove_chunk_batch``).
    ``progress.done`` says whether another batch is needed. Raises
    ``TransitionNotAllowed`` naming the memberships a remover reports data for but
    deletes none of (the others' batch is committed)."""
    return removal.remove_chunk_batch(uow, clock, membership_ids, removers)


def held_elsewhere(uow: UnitOfWork, membership_ids: Sequence[str]) -> list[str]:
    """Those of ``membership_ids`` still ``purge-pending`` though a chunk's batches are done:
    another transaction held their rows when the chunk took its locks (a duplicate message,
    or a sweep's claim passing over them), so they were skipped. Read without a lock."""
    if not membership_ids:
        return []
    found = uow.data_removal.still_purge_pending(membership_ids)
    waiting = uow.deliveries.open_confirmations(found)
    return [m for m in found if m not in waiting]


def record_chunk_failure(uow: UnitOfWork, membership_ids: Sequence[str], error: str) -> int:
    """One more failed attempt and ``error`` on each of ``membership_ids`` still
    ``purge-pending`` (those purged or in another state are left alone), set-based; commits.
    Returns how many were recorded. Like ``memberships.failures.record_failure``, changes no
    state, no version and no ``last_progress_at``."""
    if not membership_ids:
        return 0
    recorded = uow.data_removal.record_chunk_failure(membership_ids, error[:MAX_ERROR_LENGTH])
    uow.commit()
    return recorded
