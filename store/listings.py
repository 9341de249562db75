"""Paged lists and read models: memberships, audit trails, operations, timelines
(``uow.listings``)."""

from __future__ import annotations

from store.repository import Repository


class Listings(Repository):
    """Paged lists and read models: memberships, audit trails, operations, timelines
    (``uow.listings``)."""
