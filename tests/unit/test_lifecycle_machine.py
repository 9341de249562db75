"""The membership lifecycle rules (docs/lifecycle.md), checked against the machine.

The expected transitions are written out here by hand from the design: they are
the specification, not something derived from the class under test.
"""

from __future__ import annotations

import contextlib
import itertools
from types import SimpleNamespace

import pytest
from statemachine.exceptions import TransitionNotAllowed

from statemachines.membership import EVENTS, MembershipLifecycle, next_state

COLLABORATION = "b2b-collaboration"
DIRECT_CONNECT = "b2b-direct-connect"
KINDS = (COLLABORATION, DIRECT_CONNECT)

STATES = ("active", "leave-pending", "soft-deleted", "restored", "purge-pending", "purged")
ALL_EVENTS = (
    "request_leave",
    "complete_leave",
    "remove",
    "restore",
    "purge",
    "expire_retention",
    "finish_removal",
)

# (from state, event, kind) -> to state. Every triple not listed must be refused.
ALLOWED: dict[tuple[str, str, str], str] = {
    # The member asks to leave; a worker carries it out.
    ("active", "request_leave", COLLABORATION): "leave-pending",
    ("active", "request_leave", DIRECT_CONNECT): "leave-pending",
    ("restored", "request_leave", COLLABORATION): "leave-pending",
    ("restored", "request_leave", DIRECT_CONNECT): "leave-pending",
    # Collaboration keeps a restorable period; direct connect starts data removal.
    ("leave-pending", "complete_leave", COLLABORATION): "soft-deleted",
    ("leave-pending", "complete_leave", DIRECT_CONNECT): "purge-pending",
    # An admin removes the guest.
    ("active", "remove", COLLABORATION): "soft-deleted",
    ("active", "remove", DIRECT_CONNECT): "purge-pending",
    ("restored", "remove", COLLABORATION): "soft-deleted",
    ("restored", "remove", DIRECT_CONNECT): "purge-pending",
    # During the retention period: restore, permanently delete, or let it expire.
    ("soft-deleted", "restore", COLLABORATION): "restored",
    ("soft-deleted", "restore", DIRECT_CONNECT): "restored",
    ("soft-deleted", "purge", COLLABORATION): "purge-pending",
    ("soft-deleted", "purge", DIRECT_CONNECT): "purge-pending",
    ("soft-deleted", "expire_retention", COLLABORATION): "purge-pending",
    ("soft-deleted", "expire_retention", DIRECT_CONNECT): "purge-pending",
    # Data removal finishes: only a tombstone is left.
    ("purge-pending", "finish_removal", COLLABORATION): "purged",
    ("purge-pending", "finish_removal", DIRECT_CONNECT): "purged",
}

ALL_TRIPLES = list(itertools.product(STATES, ALL_EVENTS, KINDS))
REFUSED = [t for t in ALL_TRIPLES if t not in ALLOWED]


def _triple_id(triple: tuple[str, str, str]) -> str:
    state, event, kind = triple
    return f"{state}-{event}-{kind}"


def _membership(state: str | None, kind: str = COLLABORATION) -> SimpleNamespace:
    return SimpleNamespace(state=state, kind=kind)


def test_the_spec_table_covers_only_known_states_events_and_kinds():
    # Given the hand-written table of allowed transitions
    # When its keys and targets are checked against the design's vocabulary
    # Then every entry names a real state, event and kind
    for (state, event, kind), target in ALLOWED.items():
        assert state in STATES
        assert event in ALL_EVENTS
        assert kind in KINDS
        assert target in STATES
    assert len(ALL_TRIPLES) == 84
    assert len(REFUSED) == 84 - len(ALLOWED)


@pytest.mark.parametrize("triple", list(ALLOWED), ids=_triple_id)
def test_allowed_event_reaches_exactly_the_specified_state(triple):
    # Given a membership of a kind in a state from which the event is allowed
    state, event, kind = triple
    # When the event is fired through next_state
    result = next_state(state, kind, event)
    # Then it lands in exactly the state the design specifies
    assert result == ALLOWED[triple]


@pytest.mark.parametrize("triple", list(ALLOWED), ids=_triple_id)
def test_allowed_event_moves_the_bound_model_to_the_specified_state(triple):
    # Given a machine bound to a plain object in the source state
    state, event, kind = triple
    membership = _membership(state, kind)
    machine = MembershipLifecycle(model=membership)
    # When the event is sent
    machine.send(event)
    # Then the model's stored value is the specified target, and nothing else changed
    assert membership.state == ALLOWED[triple]
    assert membership.kind == kind
    assert machine.current_state_value == ALLOWED[triple]


@pytest.mark.parametrize("triple", REFUSED, ids=_triple_id)
def test_event_not_allowed_from_a_state_raises_through_next_state(triple):
    # Given a state and kind from which the event is not in the design
    state, event, kind = triple
    # When the event is fired through next_state
    # Then it is refused
    with pytest.raises(TransitionNotAllowed):
        next_state(state, kind, event)


@pytest.mark.parametrize("triple", REFUSED, ids=_triple_id)
def test_event_not_allowed_from_a_state_raises_and_leaves_the_model_unchanged(triple):
    # Given a machine bound to a plain object in that state
    state, event, kind = triple
    membership = _membership(state, kind)
    machine = MembershipLifecycle(model=membership)
    # When the refused event is sent
    with pytest.raises(TransitionNotAllowed):
        machine.send(event)
    # Then the model keeps its state and kind
    assert membership.state == state
    assert membership.kind == kind
    assert machine.current_state_value == state


def test_soft_deleted_membership_cannot_request_leave():
    # Given a soft-deleted collaboration membership
    membership = _membership("soft-deleted")
    machine = MembershipLifecycle(model=membership)
    # When the member asks to leave again
    with pytest.raises(TransitionNotAllowed):
        machine.send("request_leave")
    # Then it stays soft-deleted
    assert membership.state == "soft-deleted"


def test_purged_membership_cannot_be_restored():
    # Given a purged tombstone
    membership = _membership("purged")
    machine = MembershipLifecycle(model=membership)
    # When an admin tries to restore it
    with pytest.raises(TransitionNotAllowed):
        machine.send("restore")
    # Then it stays purged
    assert membership.state == "purged"


def test_direct_connect_membership_never_becomes_soft_deleted():
    # Given a direct connect membership, whatever state it is in
    # When every event is tried from every state
    reached = set()
    for state, event in itertools.product(STATES, ALL_EVENTS):
        with contextlib.suppress(TransitionNotAllowed):
            reached.add(next_state(state, DIRECT_CONNECT, event))
    # Then none of them leads to soft-deleted: it has no restorable period
    assert "soft-deleted" not in reached


def test_machine_has_exactly_the_six_designed_states_with_their_stored_values():
    # Given the machine class
    # When its states are listed
    values = [s.value for s in MembershipLifecycle.states]
    # Then they are exactly the six stored values of the design
    assert sorted(values) == sorted(STATES)
    assert len(values) == len(set(values))


def test_machine_has_exactly_the_seven_designed_events():
    # Given the machine class
    # When its events are listed
    # Then they are exactly the design's events
    assert sorted(e.id for e in MembershipLifecycle.events) == sorted(ALL_EVENTS)
    assert sorted(EVENTS) == sorted(ALL_EVENTS)


def test_active_is_the_initial_state_and_purged_the_only_final_one():
    # Given the machine class
    # When its initial and final states are read
    # Then active is initial and purged is the only final state
    assert MembershipLifecycle.initial_state.value == "active"
    assert [s.value for s in MembershipLifecycle.final_states] == ["purged"]


def test_new_membership_without_a_state_starts_active():
    # Given a model with no stored state yet
    membership = _membership(None)
    # When a machine is bound to it
    MembershipLifecycle(model=membership)
    # Then the model is written the initial state
    assert membership.state == "active"


def test_machine_is_configured_strictly():
    # Given the machine class
    # When its behaviour settings are read
    # Then events without transition raise, errors are not swallowed into events,
    # and configuration updates are atomic
    assert MembershipLifecycle.allow_event_without_transition is False
    assert MembershipLifecycle.catch_errors_as_events is False
    assert MembershipLifecycle.atomic_configuration_update is True


def test_unknown_event_is_refused_and_changes_nothing():
    # Given an active membership
    membership = _membership("active")
    machine = MembershipLifecycle(model=membership)
    # When an event that does not exist is sent
    with pytest.raises(TransitionNotAllowed):
        machine.send("delete_everything")
    # Then the membership is still active
    assert membership.state == "active"


def test_unknown_event_is_refused_through_next_state():
    # Given any state
    # When next_state is asked for an event that does not exist
    # Then it raises
    with pytest.raises(TransitionNotAllowed):
        next_state("active", COLLABORATION, "delete_everything")


@pytest.mark.parametrize(("kind", "expected"), [(COLLABORATION, True), (DIRECT_CONNECT, False)])
def test_collaboration_guard_only_reads_the_model(kind, expected):
    # Given a machine bound to a membership in leave-pending
    membership = _membership("leave-pending", kind)
    machine = MembershipLifecycle(model=membership)
    before = dict(vars(membership))
    # When the guard is evaluated, twice
    first = machine.is_collaboration()
    second = machine.is_collaboration()
    # Then it answers from the kind and changes neither the model nor the machine
    assert first is expected
    assert second is expected
    assert vars(membership) == before
    assert machine.current_state_value == "leave-pending"


def test_machines_bound_to_different_rows_do_not_share_state():
    # Given two memberships, each with its own machine
    first = _membership("active")
    second = _membership("active")
    first_machine = MembershipLifecycle(model=first)
    MembershipLifecycle(model=second)
    # When one of them is removed
    first_machine.send("remove")
    # Then the other is untouched
    assert first.state == "soft-deleted"
    assert second.state == "active"
