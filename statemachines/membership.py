"""The membership lifecycle: the single source of truth for what may happen.

Stored values are the hyphenated names the database keeps (with a CHECK
constraint). The machine is strict: an event that is not allowed from the
current state raises ``TransitionNotAllowed``. Guards only read the model.

Everything else about the lifecycle lives here too, next to the machine, and is
read by the rest of the service instead of being listed again: what entering a
state sets (``entry_fields``), the work a state waits for (``FOLLOW_UP``), which
states are in progress (``IN_PROGRESS``), usable (``USABLE_STATES``) or can be
left (``LEAVABLE_STATES``), when a restore comes too late
(``restore_window_closed``), and which events a membership allows now
(``allowed_events``, which views and templates ask instead of naming states).

Build one machine per request or message, bound to the row; never share one. The
answers that depend on a (state, kind, event) only are computed once and kept
(``target``, ``transition_table``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from types import MappingProxyType
from typing import Any, Protocol

from statemachine import State, StateMachine
from statemachine.exceptions import TransitionNotAllowed


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

    # A home membership is managed by its home directory: never left, never removed.
    request_leave = active.to(leave_pending, unless="is_home") | restored.to(
        leave_pending, unless="is_home"
    )
    complete_leave = leave_pending.to(soft_deleted, cond="is_collaboration") | leave_pending.to(
        purge_pending, unless="is_collaboration"
    )
    remove = (
        active.to(soft_deleted, cond="is_collaboration", unless="is_home")
        | active.to(purge_pending, unless="is_collaboration")
        | restored.to(soft_deleted, cond="is_collaboration", unless="is_home")
        | restored.to(purge_pending, unless="is_collaboration")
    )
    restore = soft_deleted.to(restored)
    purge = soft_deleted.to(purge_pending)
    expire_retention = soft_deleted.to(purge_pending)
    finish_removal = purge_pending.to(purged)

    def is_collaboration(self) -> bool:
        """Only B2B collaboration memberships keep a restorable soft-deleted period."""
        return str(self.model.kind) != MembershipKind.B2B_DIRECT_CONNECT.value

    def is_home(self) -> bool:
        """The membership of the user's own directory, not a guest one."""
        return str(self.model.kind) == MembershipKind.HOME.value


class _Row:
    """A stand-in model for rule evaluation without a database row."""

    def __init__(self, state: str, kind: str) -> None:
        self.state = state
        self.kind = kind


def next_state(state: str, kind: str, event: str) -> str:
    """Fire ``event`` on a fresh machine in ``state`` and return the target value.

    Raises ``TransitionNotAllowed`` when the event is not allowed from ``state``.
    """
    row = _Row(state, kind)
    machine = MembershipLifecycle(model=row)
    machine.send(event)
    return row.state


# On the class, ``events`` is the list the metaclass builds; the stubs only know the
# instance method of the same name.
EVENTS: tuple[str, ...] = tuple(e.id for e in MembershipLifecycle.events)  # type: ignore[attr-defined]


# ---- answers read off the machine, once -----------------------------------------------------

TransitionKey = tuple[str, str, str]
"""(from state, event, kind)."""


@cache
def target(state: str, kind: str, event: str) -> str | None:
    """Where ``event`` takes a membership in ``state`` of ``kind``; ``None`` when the
    machine refuses it.

    The machine is fired once per (state, kind, event) and its answer kept: its guards
    read only the kind, so the answer cannot differ between rows, and building a machine
    per request was a tenth of a leave's time in the web process. The keys are bounded
    by the states, kinds and events the code names.
    """
    try:
        return next_state(state, kind, event)
    except TransitionNotAllowed:
        return None


@cache
def transition_table() -> Mapping[TransitionKey, str]:
    """Every allowed (state, event, kind) → target state, read off the machine once;
    what the machine refuses is absent. The per-row and the set-based paths both use it."""
    table: dict[TransitionKey, str] = {}
    for state in MembershipState:
        for kind in MembershipKind:
            for event in EVENTS:
                found = target(state.value, kind.value, event)
                if found is not None:
                    table[(state.value, event, kind.value)] = found
    return MappingProxyType(table)


def targets_of(from_state: str, event: str) -> dict[str, tuple[str, ...]]:
    """Target state → the kinds ``event`` leads there from ``from_state``; a kind the
    machine refuses ``event`` for is in none of them."""
    found: dict[str, list[str]] = defaultdict(list)
    for (state, name, kind), to_state in transition_table().items():
        if (state, name) == (from_state, event):
            found[to_state].append(kind)
    return {to_state: tuple(kinds) for to_state, kinds in found.items()}


@cache
def allowed_events(state: str, kind: str) -> frozenset[str]:
    """The events a membership in ``state`` of ``kind`` allows now: what pages and the API
    offer, instead of naming states."""
    return frozenset(e for (s, e, k) in transition_table() if (s, k) == (state, kind))


@cache
def refused_for_kind(kind: str, event: str) -> bool:
    """Whether the machine refuses ``event`` to ``kind`` in a state where it allows it to
    another kind: a refusal because of what the membership is (a home membership cannot
    be left or removed), not because of where it is in its lifecycle."""
    for state in MembershipState:
        others = any(
            target(state.value, other.value, event) is not None
            for other in MembershipKind
            if other.value != kind
        )
        if others and target(state.value, kind, event) is None:
            return True
    return False


def sources_of(event: str) -> tuple[str, ...]:
    """The states ``event`` is allowed from, for some kind, in the order of the states."""
    found = {state for (state, name, _kind) in transition_table() if name == event}
    return tuple(s.value for s in MembershipState if s.value in found)


LEAVABLE_STATES: tuple[str, ...] = sources_of("request_leave")
"""The states a member may leave from (the sources of ``request_leave``)."""

USABLE_STATES: tuple[str, ...] = (MembershipState.ACTIVE.value, MembershipState.RESTORED.value)
"""The states in which the guest can use the organization (``restored`` behaves like
``active``): only these get new grants and data."""

LISTED_STATES: tuple[str, ...] = (*USABLE_STATES, MembershipState.LEAVE_PENDING.value)
"""What a member's Organizations list shows: what they can use, and what they are leaving."""

FOLLOW_UP: Mapping[str, str] = MappingProxyType(
    {
        MembershipState.LEAVE_PENDING.value: "complete_leave",
        MembershipState.PURGE_PENDING.value: "remove_data",
    }
)
"""The work a state waits for: sent after the commit that enters it, and sent again by
the sweep when the membership makes no progress (the work was lost)."""

IN_PROGRESS: tuple[str, ...] = tuple(FOLLOW_UP)
"""The states that a worker moves on by itself."""


class Durations(Protocol):
    """The durations entering a state needs (``store.unit_of_work.Policy`` has them)."""

    @property
    def retention_period(self) -> timedelta: ...

    @property
    def removal_window(self) -> timedelta: ...


def entry_fields(to_state: str, now: datetime, durations: Durations) -> dict[str, Any]:
    """The timestamps and due times a membership gets on entering ``to_state``."""
    match to_state:
        case MembershipState.LEAVE_PENDING:
            return {"leave_requested_at": now, "last_progress_at": now}
        case MembershipState.SOFT_DELETED:
            return {"soft_deleted_at": now, "purge_due_at": now + durations.retention_period}
        case MembershipState.RESTORED:
            return {"restored_at": now, "purge_due_at": None}
        case MembershipState.PURGE_PENDING:
            return {
                "purge_started_at": now,
                "removal_due_by": now + durations.removal_window,
                "last_progress_at": now,
                "attempts": 0,
                "last_error": None,
            }
        case MembershipState.PURGED:
            # Nothing personal remains: the tombstone keeps ids, states and timestamps.
            # Nor any link to the user: the tombstone shows the membership's pseudonym.
            return {
                "purged_at": now,
                "email": None,
                "display_name": None,
                "last_error": None,
                "user_id": None,
            }
    return {}


def restore_window_closed(
    state: str,
    purge_due_at: datetime | None,
    purge_started_at: datetime | None,
    now: datetime,
) -> bool:
    """Whether a restore comes too late because the retention period ran out: the
    membership is soft-deleted past its ``purge_due_at``, or the retention timer
    (``expire_retention``, which starts a purge at or after ``purge_due_at``) has moved
    it on. A purge an admin started before the due time is not a closed window."""
    if purge_due_at is None or purge_due_at > now:
        return False
    if state == MembershipState.SOFT_DELETED:
        return True
    return state in (MembershipState.PURGE_PENDING, MembershipState.PURGED) and (
        purge_started_at is not None and purge_started_at >= purge_due_at
    )


def retention_expired(state: str, purge_due_at: datetime | None, now: datetime) -> bool:
    """Whether the retention timer is due: soft-deleted and ``purge_due_at`` has passed."""
    return (
        state == MembershipState.SOFT_DELETED and purge_due_at is not None and purge_due_at <= now
    )
