"""Idempotency keys: a retried request gets the first response instead of a second decision.

A client that did not hear the answer to a POST (a timeout, a dropped connection)
sends it again with the same ``Idempotency-Key``. The first request claims the
key; its response is stored; a retry with the same key and the same request gets
that stored response back. The same key with a different request is refused,
because answering it with someone else's response would be a lie.

Keys belong to the caller (``principal.id``): two callers never share one. They
expire after ``KEY_LIFETIME``; an abandoned claim (the process died mid-request)
can be taken over after ``CLAIM_TIMEOUT``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from memberships.clock import Clock
from memberships.errors import LifecycleError
from memberships.principal import Principal
from store.models import IdempotencyKey
from store.unit_of_work import UnitOfWork

KEY_LIFETIME = timedelta(hours=24)
CLAIM_TIMEOUT = timedelta(minutes=1)
MAX_KEY_LENGTH = 255


class IdempotencyKeyReused(LifecycleError):
    """The key was first used for a different request (method, path or body)."""

    code = "idempotency-key-reused"
    title = "This Idempotency-Key was used for a different request"


class IdempotencyKeyInUse(LifecycleError):
    """The first request with this key is still being carried out: retry a little later."""

    code = "idempotency-key-in-use"
    title = "A request with this Idempotency-Key is still in progress"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status_code: int
    headers: dict[str, str]
    body: str


def claim_key(
    uow: UnitOfWork, clock: Clock, principal: Principal, key: str, request_hash: str
) -> StoredResponse | None:
    """Claim ``key`` for this request, or return the response stored for it.

    ``None`` means the caller owns the key now and must ``remember_response`` or
    ``release_key`` when done. Raises ``IdempotencyKeyReused`` (same key, different
    ``request_hash``) or ``IdempotencyKeyInUse`` (the first request is still running).
    """
    now = clock()
    row = uow.idempotency.of(principal.id, key)
    if row is not None and row.expires_at <= now:
        uow.idempotency.forget(row)
        row = None
    if row is None:
        claimed = uow.idempotency.claim(
            IdempotencyKey(
                principal_id=principal.id,
                key=key,
                request_hash=request_hash,
                created_at=now,
                locked_until=now + CLAIM_TIMEOUT,
                expires_at=now + KEY_LIFETIME,
            )
        )
        if not claimed:
            # Another request claimed the same key between our read and our insert.
            uow.rollback()
            raise IdempotencyKeyInUse(
                "Another request with this Idempotency-Key is in progress; retry shortly."
            )
        uow.commit()
        return None
    if row.request_hash != request_hash:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was first used with a different method, path or body: "
            "use a new key for a new request."
        )
    if row.status_code is not None:
        return StoredResponse(
            row.status_code, json.loads(row.response_headers or "{}"), row.response_body or ""
        )
    if row.locked_until is not None and row.locked_until > now:
        raise IdempotencyKeyInUse(
            "The first request with this Idempotency-Key is still in progress; retry shortly."
        )
    # The first request was abandoned (its process died): take the claim over, once.
    if not uow.idempotency.take_over(row.id, row.locked_until, now + CLAIM_TIMEOUT):
        raise IdempotencyKeyInUse("Another retry took this Idempotency-Key over; retry shortly.")
    uow.commit()
    return None


def remember_response(
    uow: UnitOfWork,
    principal: Principal,
    key: str,
    response: StoredResponse,
    membership_id: str | None = None,
) -> None:
    """Store the response of the request that claimed ``key``, for its retries.

    ``membership_id`` names the membership the response describes, so that data
    removal can erase the stored copy of its personal fields.
    """
    uow.idempotency.store_response(
        principal.id,
        key,
        status_code=response.status_code,
        response_headers=json.dumps(response.headers, sort_keys=True),
        response_body=response.body,
        membership_id=membership_id,
    )
    uow.commit()


def release_key(uow: UnitOfWork, principal: Principal, key: str) -> None:
    """Give up a claim whose request failed unexpectedly, so a retry runs it afresh."""
    uow.idempotency.release(principal.id, key)
    uow.commit()


def forget_expired_keys(uow: UnitOfWork, clock: Clock, limit: int = 1000) -> int:
    """Delete up to ``limit`` expired keys (a periodic sweep calls this); returns how many."""
    forgotten = uow.idempotency.forget_expired(clock(), limit)
    uow.commit()
    return forgotten


# At most this many batches of expired idempotency keys are deleted per tick, so a
# backlog of them never delays the next tick's timers; the rest go on later ticks.
KEY_BATCHES_PER_TICK = 10


def forget_expired_idempotency_keys(
    uow: UnitOfWork, clock: Clock, *, should_continue: Callable[[], bool] = lambda: True
) -> int:
    """Delete expired idempotency keys batch by committed batch, at most
    ``KEY_BATCHES_PER_TICK`` batches of ``sweep_batch_size``. Returns how many."""
    limit = uow.policy.sweep_batch_size
    forgotten = 0
    for _ in range(KEY_BATCHES_PER_TICK):
        if not should_continue():
            break
        deleted = forget_expired_keys(uow, clock, limit)
        forgotten += deleted
        if deleted < limit:
            break
    return forgotten
