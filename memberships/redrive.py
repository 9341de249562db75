"""Lost work, sent again: a ``leave-pending`` or ``purge-pending`` membership with no
progress for ``redrive_after`` has lost its message (a crash between commit and send,
a flushed Redis), so the sweep sends it again and touches its ``last_progress_at`` so
the next tick does not send it once more. Memberships still ``purge-pending`` past
``removal_due_by`` are counted as *overdue*; they stay in the re-drive, never dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from memberships.batches import send_after_commit
from memberships.clock import Clock
from statemachines.membership import FOLLOW_UP
from store.unit_of_work import UnitOfWork


def redrive_stalled(
    uow: UnitOfWork,
    clock: Clock,
    *,
    should_continue: Callable[[], bool] = lambda: True,
) -> dict[str, int]:
    """Send again the work of every in-progress membership with no progress for
    ``redrive_after``; touch ``last_progress_at`` so it waits another period before the
    next re-send. Returns how many were re-sent per actor name.
    """
    limit = uow.policy.sweep_batch_size
    sent: dict[str, int] = {}
    for state, actor_name in FOLLOW_UP.items():
        sent[actor_name] = 0
        while should_continue():
            now = clock()
            cutoff = now - uow.policy.redrive_after
            ids = uow.batches.claim_stalled(state, cutoff, limit)
            if not ids:
                uow.rollback()
                break
            uow.batches.touch_progress(ids, now)
            send_after_commit(uow, actor_name, ids)
            uow.commit()
            sent[actor_name] += len(ids)
            if len(ids) < limit:
                break
    return sent


def count_overdue_removals(uow: UnitOfWork, now: datetime) -> int:
    """``purge-pending`` memberships past ``removal_due_by``: the data-removal window missed."""
    return uow.batches.count_overdue_removals(now)
