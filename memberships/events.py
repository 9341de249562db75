"""The events an organization's apps are told of (the outbox, ``store.outbox``), as its
admins and operators read them back: the newest ones, for ``lifecycle events tail``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from memberships.clock import Clock
from memberships.decisions import admin_organization
from memberships.principal import Principal
from store.unit_of_work import UnitOfWork

MAX_TAIL = 10_000


@dataclass(frozen=True, slots=True)
class EventView:
    id: int
    event_id: str
    type: str
    membership_id: str | None
    occurred_at: datetime
    payload: str
    """The stored body, as receivers get it (redacted after a purge)."""


def recent_events(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, limit: int = 20
) -> list[EventView]:
    """The organization's last ``limit`` events, oldest of them first (as written)."""
    org = admin_organization(uow, clock(), principal, org_ref, "read_events")
    limit = max(1, min(limit, MAX_TAIL))
    rows = uow.outbox.newest_of(org.id, limit)
    return [
        EventView(e.id, e.event_id, e.type, e.membership_id, e.occurred_at, e.payload)
        for e in reversed(rows)
    ]
