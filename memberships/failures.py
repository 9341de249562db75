"""Failures of background work, kept on the membership: Redis dead letters vanish, this
does not.

A worker that fails on a membership records one more attempt and the error text;
operators see both in ``lifecycle timers`` and the membership's view. Recording
changes no state and no version (it is not a decision, so it is not audited) and
leaves ``last_progress_at`` alone, so the sweep still re-drives work that keeps
failing.
"""

from __future__ import annotations

from store.unit_of_work import UnitOfWork

MAX_ERROR_LENGTH = 2000


def describe(error: BaseException) -> str:
    """``ExceptionType: message``, bounded so a huge message cannot bloat the row."""
    text = f"{type(error).__name__}: {error}".strip()
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


def record_failure(uow: UnitOfWork, membership_id: str, error: str) -> int | None:
    """Count one more failed attempt on the membership and keep ``error``; commits.

    Returns the attempts so far, or ``None`` for an unknown or purged membership
    (a tombstone keeps no error text).
    """
    if not uow.batches.count_failed_attempt(membership_id, error[:MAX_ERROR_LENGTH]):
        uow.rollback()
        return None
    attempts = uow.batches.attempts_of(membership_id)
    uow.commit()
    return attempts
