"""Idempotency keys of POST requests (``uow.idempotency``)."""

from __future__ import annotations

from store.repository import Repository


class IdempotencyKeys(Repository):
    """Idempotency keys of POST requests (``uow.idempotency``)."""
