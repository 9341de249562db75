"""Creating organizations, users, memberships and grants (``uow.provisioning``)."""

from __future__ import annotations

from store.repository import Repository


class Provisioning(Repository):
    """Creating organizations, users, memberships and grants (``uow.provisioning``)."""
