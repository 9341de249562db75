"""The membership lifecycle: the single source of truth for what may happen.

Stored values are the hyphenated names the database keeps (with a CHECK
constraint). The machine is strict: an event that is not allowed from the
current state raises ``TransitionNotAllowed``. Guards only read the model.

Build one machine per request or message, bound to the row; never share one.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from statemachine import State, StateMachine


class MembershipState(StrEnum):
    ACTIVE = "active"
    LEAVE_PENDING = "leave-pending"
    SOFT_DELETED = "soft-deleted"
    RESTORED = "restored"
    PURGE_PENDING = "purge-pending"
    PURGED = "purged"


class MembershipKind(StrEnum):
    HOME = "home"
    B2B_COLLABORATION = "b2b-collaboration"
    B2B_DIRECT_CONNECT = "b2b-direct-connect"


class MembershipLifecycle(StateMachine):
    """A guest membership from active use to a purged tombstone.

    The model must expose ``state`` (a stored value) and ``kind``: the kind
    decides whether leaving and removal pass through the soft-deleted period
    (B2B collaboration) or start data removal at once (B2B direct connect).
    """

    active = State("Active", value=MembershipState.ACTIVE.value, initial=True)
    leave_pending = State("Leave pending", value=MembershipState.LEAVE_PENDING.value)
    soft_deleted = State("Soft deleted", value=MembershipState.SOFT_DELETED.value)
    restored = State("Restored", value=MembershipState.RESTORED.value)
    purge_pending = State("Purge pending", value=MembershipState.PURGE_PENDING.value)
    purged = State("Purged", value=MembershipState.PURGED.value, final=True)

    request_leave = active.to(leave_pending) | restored.to(leave_pending)
    complete_leave = leave_pending.to(soft_deleted, cond="is_collaboration") | leave_pending.to(
        purge_pending, unless="is_collaboration"
    )
    remove = (
        active.to(soft_deleted, cond="is_collaboration")
        | active.to(purge_pending, unless="is_collaboration")
        | restored.to(soft_deleted, cond="is_collaboration")
        | restored.to(purge_pending, unless="is_collaboration")
    )
    restore = soft_deleted.to(restored)
    purge = soft_deleted.to(purge_pending)
    expire_retention = soft_deleted.to(purge_pending)
    finish_removal = purge_pending.to(purged)

    def is_collaboration(self) -> bool:
        """Only B2B collaboration memberships keep a restorable soft-deleted period."""
        return str(self.model.kind) != MembershipKind.B2B_DIRECT_CONNECT.value


class _Row:
    """A stand-in model for rule evaluation without a database row."""

    def __init__(self, state: str, kind: str) -> None:
        self.state = state
        self.kind = kind


def next_state(state: str, kind: str, event: str, **kwargs: Any) -> str:
    """Fire ``event`` on a fresh machine in ``state`` and return the target value.

    Raises ``TransitionNotAllowed`` when the event is not allowed from ``state``.
    """
    row = _Row(state, kind)
    machine = MembershipLifecycle(model=row)
    machine.send(event, **kwargs)
    return row.state


# On the class, ``events`` is the list the metaclass builds; the stubs only know the
# instance method of the same name.
EVENTS: tuple[str, ...] = tuple(e.id for e in MembershipLifecycle.events)  # type: ignore[attr-defined]


def allowed_events(state: str, kind: str) -> frozenset[str]:
    """The events the machine accepts from ``state`` for a membership of ``kind``: what a
    page may offer (Restore, Remove, …) without listing states itself."""
    machine = MembershipLifecycle(model=_Row(state, kind))
    return frozenset(str(e.id) for e in machine.allowed_events)
