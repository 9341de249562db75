"""Invitations (``uow.invitations``)."""

from __future__ import annotations

from store.repository import Repository


class Invitations(Repository):
    """Invitations (``uow.invitations``)."""
