"""What the lifecycle module answers besides the edges: the home guard, the actions a
membership allows now, the states in progress and leavable, the fields a state sets,
and when a restore comes too late (docs/domain.md, "Leaving" and "What an admin
decides")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from statemachines.membership import (
    FOLLOW_UP,
    IN_PROGRESS,
    LEAVABLE_STATES,
    allowed_events,
    entry_fields,
    refused_for_kind,
    restore_window_closed,
    sources_of,
    target,
    targets_of,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DURATIONS = SimpleNamespace(retention_period=timedelta(days=30), removal_window=timedelta(days=7))


@pytest.mark.parametrize("event", ["remove", "request_leave"])
def test_a_home_membership_is_never_left_or_removed(event):
    # Given a home membership in a usable state
    # When the machine is asked about leaving or removal
    # Then it refuses, and says it refuses because of the kind
    assert target("active", "home", event) is None
    assert target("restored", "home", event) is None
    assert refused_for_kind("home", event)
    assert not refused_for_kind("b2b-collaboration", event)


def test_allowed_events_are_what_the_machine_allows_now():
    # Given memberships in several states and kinds
    # When the events they allow are asked for
    # Then they are the machine's edges, and a home membership allows none
    assert allowed_events("active", "b2b-collaboration") == {"request_leave", "remove"}
    assert allowed_events("soft-deleted", "b2b-direct-connect") == {
        "restore",
        "purge",
        "expire_retention",
    }
    assert allowed_events("active", "home") == frozenset()
    assert allowed_events("purged", "b2b-collaboration") == frozenset()


def test_in_progress_and_leavable_states():
    # Given the lifecycle
    # Then the states a worker moves on each have follow-up work, and a member may leave
    # from exactly the sources of request_leave
    assert set(IN_PROGRESS) == {"leave-pending", "purge-pending"}
    assert FOLLOW_UP == {"leave-pending": "complete_leave", "purge-pending": "remove_data"}
    assert LEAVABLE_STATES == ("active", "restored")


def test_entry_fields_set_due_times_from_the_durations():
    # Given the durations of a policy
    # When a membership enters soft-deleted, purge-pending or purged
    soft = entry_fields("soft-deleted", NOW, DURATIONS)
    pending = entry_fields("purge-pending", NOW, DURATIONS)
    purged = entry_fields("purged", NOW, DURATIONS)
    # Then the due times follow from them, and a tombstone loses the personal fields
    assert soft == {"soft_deleted_at": NOW, "purge_due_at": NOW + timedelta(days=30)}
    assert pending["removal_due_by"] == NOW + timedelta(days=7)
    assert pending["attempts"] == 0
    assert purged["email"] is None and purged["display_name"] is None
    assert entry_fields("active", NOW, DURATIONS) == {}


def test_restore_window_closes_at_the_end_of_retention_only():
    due = NOW - timedelta(seconds=1)
    # Soft-deleted past its due time: closed; before it: open
    assert restore_window_closed("soft-deleted", due, None, NOW)
    assert not restore_window_closed("soft-deleted", NOW + timedelta(days=1), None, NOW)
    # Moved on by the retention timer (at or after the due time): closed
    assert restore_window_closed("purge-pending", due, due, NOW)
    # Permanently deleted by an admin before the due time: not a closed window
    assert not restore_window_closed("purge-pending", due, due - timedelta(days=1), NOW)


def test_the_states_an_event_is_allowed_from_are_the_machine_s():
    # Given the lifecycle's events
    # When asked where each may happen (called here, not only through the constants
    # computed from it when the module loads)
    # Then each is allowed from exactly its states, in the order of the states
    assert sources_of("request_leave") == ("active", "restored")
    assert sources_of("remove") == ("active", "restored")
    assert sources_of("restore") == ("soft-deleted",)
    assert sources_of("complete_leave") == ("leave-pending",)
    assert sources_of("finish_removal") == ("purge-pending",)
    assert sources_of("delete_everything") == ()


def test_where_an_event_leads_depends_on_the_kind():
    # Given a state and an event
    # When asked where the event leads from that state
    # Then each target lists the kinds it is for, and a refused event leads nowhere
    assert targets_of("active", "remove") == {
        "soft-deleted": ("b2b-collaboration",),
        "purge-pending": ("b2b-direct-connect",),
    }
    assert targets_of("soft-deleted", "restore") == {
        "restored": ("home", "b2b-collaboration", "b2b-direct-connect")
    }
    assert targets_of("purged", "restore") == {}
