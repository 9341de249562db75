"""Accounts, sign-in sessions and API tokens (``uow.accounts``)."""

from __future__ import annotations

from store.repository import Repository


class Accounts(Repository):
    """Accounts, sign-in sessions and API tokens (``uow.accounts``)."""
