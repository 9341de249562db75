"""Idempotency keys of POST requests (``uow.idempotency``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from store.models import IdempotencyKey
from store.repository import Repository


class IdempotencyKeys(Repository):
    """Idempotency keys of POST requests (``uow.idempotency``)."""

    def of(self, principal_id: str, key: str) -> IdempotencyKey | None:
        """The caller's key of that name."""
        return self.session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.principal_id == principal_id, IdempotencyKey.key == key
            )
        )

    def forget(self, row: IdempotencyKey) -> None:
        """Delete one loaded key, flushed (before a new claim of the same key)."""
        self.session.delete(row)
        self.session.flush()

    def claim(self, row: IdempotencyKey) -> bool:
        """Insert a new key's claim, flushed; ``False`` when a concurrent request's claim of
        the same key won the unique index (the unit of work must then be rolled back)."""
        self.session.add(row)
        try:
            self.session.flush()
        except IntegrityError:
            return False
        return True

    def take_over(
        self, row_id: int, locked_until: datetime | None, new_locked_until: datetime
    ) -> bool:
        """Extend an abandoned claim's lock if it is still ``locked_until`` (compare-and-set);
        ``False`` when another retry took it over first."""
        taken = self.session.execute(
            update(IdempotencyKey)
            .where(IdempotencyKey.id == row_id, IdempotencyKey.locked_until == locked_until)
            .values(locked_until=new_locked_until)
            .execution_options(synchronize_session=False)
        )
        return taken.rowcount == 1  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    def store_response(
        self,
        principal_id: str,
        key: str,
        *,
        status_code: int,
        response_headers: str,
        response_body: str,
        membership_id: str | None,
    ) -> None:
        """Keep the response of the request that holds the claim of the key, and unlock it."""
        self.session.execute(
            update(IdempotencyKey)
            .where(
                IdempotencyKey.principal_id == principal_id,
                IdempotencyKey.key == key,
                IdempotencyKey.status_code.is_(None),
            )
            .values(
                status_code=status_code,
                response_headers=response_headers,
                response_body=response_body,
                membership_id=membership_id,
                locked_until=None,
            )
            .execution_options(synchronize_session=False)
        )

    def release(self, principal_id: str, key: str) -> None:
        """Delete the key's claim unless a response is stored for it."""
        self.session.execute(
            delete(IdempotencyKey).where(
                IdempotencyKey.principal_id == principal_id,
                IdempotencyKey.key == key,
                IdempotencyKey.status_code.is_(None),
            )
        )

    def forget_expired(self, now: datetime, limit: int) -> int:
        """Delete up to ``limit`` keys expired at ``now`` in one statement; returns how many."""
        ids = select(IdempotencyKey.id).where(IdempotencyKey.expires_at <= now).limit(limit)
        result = self.session.execute(
            delete(IdempotencyKey)
            .where(IdempotencyKey.id.in_(ids.scalar_subquery()))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # DELETE result
