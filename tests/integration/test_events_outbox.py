"""The events outbox: exactly one event per committed transition, on every path that
moves a membership (one row from a use case, the sweep's batch, the chunked removal's
finish), none for a transition rolled back or lost to a concurrent decision; the
organization's settings changes; the payload's shape; the types read off the machine."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select

from memberships import admin, automatic, removal, retention, self_service, sweep
from memberships.decisions import apply_event, transition_for
from memberships.errors import Conflict
from memberships.principal import SYSTEM
from statemachines.membership import MembershipState, transition_table
from store import transitions
from store.models import AuditEvent, Event, Membership, Organization, User
from store.outbox import EVENT_TYPES, MEMBERSHIP_EVENT_TYPES, membership_event_type
from store.unit_of_work import Policy, RecordingDispatcher, UnitOfWork


def _events(uow_or_factory: Any, **where: Any) -> list[Event]:
    with uow_or_factory() as uow:
        session = uow.session if hasattr(uow, "session") else uow
        query = select(Event).order_by(Event.id)
        for name, value in where.items():
            query = query.where(getattr(Event, name) == value)
        rows = list(session.scalars(query))
        session.expunge_all()
        return rows


def _transitions_audited(world: Any) -> Counter[tuple[str, str]]:
    """(membership, event type) of every allowed audit row that moved a membership."""
    with world.uow() as uow:
        rows = uow.session.execute(
            select(AuditEvent.membership_id, AuditEvent.to_state).where(
                AuditEvent.outcome == "allowed",
                AuditEvent.from_state.is_not(None),
                AuditEvent.to_state.is_not(None),
            )
        ).all()
    return Counter((m, membership_event_type(s)) for m, s in rows)


def _membership_events(world: Any) -> Counter[tuple[str, str]]:
    return Counter(
        (e.membership_id, e.type) for e in _events(world.uow) if e.type.startswith("membership.")
    )


def test_the_membership_event_types_are_the_states_the_machine_can_enter():
    # Given the machine's edges
    entered = {to for to in transition_table().values()}
    # Then there is one type per state some edge leads to, and none for the others
    assert MEMBERSHIP_EVENT_TYPES == (
        "membership.leave_pending",
        "membership.soft_deleted",
        "membership.restored",
        "membership.purge_pending",
        "membership.purged",
    )
    assert {t.removeprefix("membership.").replace("_", "-") for t in MEMBERSHIP_EVENT_TYPES} == (
        entered
    )
    assert MembershipState.ACTIVE.value not in entered
    # And the other types are listed once each
    assert "organization.settings_changed" in EVENT_TYPES
    assert len(set(EVENT_TYPES)) == len(EVENT_TYPES)
    assert {t for t in EVENT_TYPES if t.startswith("removal_request.")} == {
        f"removal_request.{w}" for w in ("opened", "approved", "declined", "overdue", "closed")
    }


def test_each_committed_single_row_transition_writes_one_event(world):
    # Given ann leaves open (request_leave, complete_leave), an admin restores her,
    # removes her again and deletes her permanently, and her data is removed
    ann = world.membership("open", "ann")
    gadmin = world.principal("gadmin")
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, ann)
    for step in (admin.restore, admin.remove, admin.purge):
        world.clock.advance(timedelta(minutes=1))
        with world.uow() as uow:
            step(uow, world.clock, gadmin, "open.example", ann)
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, ann)
    # Then every transition the audit log shows has exactly one event, and nothing else
    audited = _transitions_audited(world)
    assert _membership_events(world) == audited
    mine = [e.type for e in _events(world.uow, membership_id=ann)]
    assert mine == [
        "membership.leave_pending",
        "membership.soft_deleted",
        "membership.restored",
        "membership.soft_deleted",
        "membership.purge_pending",
        "membership.purged",
    ]


PURGED = MembershipState.PURGED.value
# A membership of each kind in the world: the one every edge of that kind is tried on.
_MEMBERSHIP_OF_KIND = {
    "b2b-collaboration": ("open", "ann"),
    "b2b-direct-connect": ("open", "pat"),
    "home": ("home", "ann"),
}


def _membership_of(world: Any, org: str, user: str) -> str:
    """The membership of ``user`` in ``org``, the home one too (the world lists guests only)."""
    with world.uow() as uow:
        found = uow.session.scalar(
            select(Membership.id).where(
                Membership.organization_id == world.orgs[org],
                Membership.user_id == world.users[user],
            )
        )
    assert found is not None
    return str(found)


def test_every_edge_of_the_machine_writes_one_event_named_after_its_target(world):
    # Given every edge of the machine (state, event, kind) and the state it leads to, the
    # purges last (a purged membership no longer names its person)
    edges = sorted(transition_table().items(), key=lambda e: (e[1] == PURGED, e))
    assert {kind for (_, _, kind), _ in edges} <= set(_MEMBERSHIP_OF_KIND)
    of_kind = {k: _membership_of(world, *where) for k, where in _MEMBERSHIP_OF_KIND.items()}
    for (from_state, event, kind), to_state in edges:
        membership_id = of_kind[kind]
        # And a membership of that kind put in the edge's state
        with world.uow() as uow:
            uow.session.execute(
                Membership.__table__.update()
                .where(Membership.__table__.c.id == membership_id)
                .values(state=from_state)
            )
            uow.commit()
        before = {e.event_id for e in _events(world.uow)}
        # When the event is applied, and committed
        with world.uow() as uow:
            row = uow.session.get(Membership, membership_id)
            moved = apply_event(uow, world.clock(), SYSTEM, row, event)
            version = moved.version
            uow.commit()
        # Then exactly one event is written: its type is the target state's, and its data
        # says where from, where to, by which event, at which version
        new = [e for e in _events(world.uow) if e.event_id not in before]
        edge = f"{from_state} --{event}--> {to_state} ({kind})"
        assert len(new) == 1, edge
        (written,) = new
        body = json.loads(written.payload)
        assert (written.type, body["type"]) == (membership_event_type(to_state),) * 2, edge
        data = body["data"]
        assert (data["fromState"], data["toState"], data["lifecycleEvent"]) == (
            from_state,
            to_state,
            event,
        ), edge
        assert (data["membershipId"], data["kind"], data["version"]) == (
            membership_id,
            kind,
            version,
        ), edge
        # and the person is named, except in the event of the purge
        assert ("user" in data) is (to_state != PURGED), edge


def test_the_payload_is_a_standard_webhooks_body_with_the_membership_and_its_user(world):
    # Given an admin removes ann from open
    ann = world.membership("open", "ann")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", ann)
    # When the event is read
    (event,) = _events(world.uow, membership_id=ann)
    payload = json.loads(event.payload)
    # Then it is the Standard Webhooks envelope with camelCase data
    now = world.clock()
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert payload == {
        "type": "membership.soft_deleted",
        "timestamp": stamp,
        "data": {
            "membershipId": ann,
            "organization": {"id": world.orgs["open"], "domain": "open.example"},
            "kind": "b2b-collaboration",
            "fromState": "active",
            "toState": "soft-deleted",
            "lifecycleEvent": "remove",
            "occurredAt": stamp,
            "version": 2,
            "purgeDueAt": (now + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "user": {"id": world.users["ann"], "email": "ann@mail.example"},
        },
    }
    # And its id is what receivers see as webhook-id: msg_ and an unguessable part
    assert event.event_id.startswith("msg_") and len(event.event_id) >= 4 + 32
    assert event.type == payload["type"] and event.organization_id == world.orgs["open"]
    assert event.occurred_at == now and event.dispatched_at is None


def test_a_purge_leaves_no_user_in_any_event_of_the_membership(world):
    # Given pat (direct connect) is removed (purge-pending) and his data removed (purged)
    pat = world.membership("open", "pat")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", pat)
    before = _events(world.uow, membership_id=pat)
    assert json.loads(before[0].payload)["data"]["user"]["id"] == world.users["pat"]
    with world.uow() as uow:
        removal.remove_all_data(uow, world.clock, pat)
    # Then the purged event has no user, and the earlier one lost it too
    events = _events(world.uow, membership_id=pat)
    assert [e.type for e in events] == ["membership.purge_pending", "membership.purged"]
    for event in events:
        data = json.loads(event.payload)["data"]
        assert "user" not in data
        assert world.users["pat"] not in event.payload and "pat@mail.example" not in event.payload
        assert data["membershipId"] == pat
    # And the events of another membership keep their user
    ann = world.membership("open", "ann")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", ann)
    (ann_event,) = _events(world.uow, membership_id=ann)
    assert json.loads(ann_event.payload)["data"]["user"]["email"] == "ann@mail.example"


def test_a_transition_rolled_back_leaves_no_event(world):
    # Given a use case moves ann but its unit of work ends without a commit
    ann = world.membership("open", "ann")
    with world.uow() as uow:
        row = uow.session.get(Membership, ann)
        apply_event(uow, world.clock(), SYSTEM, row, "remove")
        assert uow.session.scalars(select(Event.id)).all()  # written in the transaction
    # Then neither the move nor its event is stored
    with world.uow() as uow:
        assert uow.session.get(Membership, ann).state == "active"
    assert _events(world.uow) == []


def test_a_lost_compare_and_set_writes_no_event(world):
    # Given a decision read ann's membership, then another decision moved it first
    ann = world.membership("open", "ann")
    with world.uow() as stale:
        row = stale.session.get(Membership, ann)
        stale.session.expunge(row)
    with world.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, "open.example", ann)
    # When the first decision tries its own move on what it read
    with world.uow() as uow:
        uow.session.add(row)
        transition = transition_for(
            uow, world.clock(), SYSTEM.id, "request_leave", "active", "leave-pending"
        )
        assert transitions.move_one(uow.session, row, transition) is False
        uow.commit()
    # And a use case that loses the race is refused
    with world.uow() as uow, pytest.raises(Conflict):
        fresh = uow.session.get(Membership, ann)
        uow.session.execute(
            Membership.__table__.update()
            .where(Membership.__table__.c.id == ann)
            .values(version=fresh.version + 5)
        )
        apply_event(uow, world.clock(), SYSTEM, fresh, "restore")
    # Then only the committed move has an event
    assert [e.type for e in _events(world.uow)] == ["membership.soft_deleted"]


def _email(user_id: str) -> str:
    """An address with what JSON must escape: a quote, a backslash, a non-ASCII letter."""
    return f'"{user_id}\\é"@x.example'


def _due_memberships(session_factory: Any, now: Any, n: int) -> list[str]:
    org_id = str(uuid.uuid4())
    users = [str(uuid.uuid4()) for _ in range(n)]
    with session_factory() as session, session.begin():
        session.execute(
            insert(Organization),
            [{"id": org_id, "domain": "due.example", "display_name": "Due", "created_at": now}],
        )
        session.execute(
            insert(User),
            [
                {"id": u, "email": f"{u}@x.example", "display_name": "U", "created_at": now}
                for u in users
            ],
        )
        rows = [
            {
                "id": str(uuid.uuid4()),
                "user_id": u,
                "organization_id": org_id,
                "kind": "b2b-collaboration",
                "state": "soft-deleted",
                "version": 3,
                "email": _email(u),
                "display_name": "U",
                "created_at": now,
                "purge_due_at": now - timedelta(minutes=1),
            }
            for u in users
        ]
        session.execute(insert(Membership), rows)
    return [r["id"] for r in rows]


def test_the_sweep_writes_one_event_per_membership_of_each_batch(session_factory, clock):
    # Given 130 memberships past their retention period, swept in batches of 50
    ids = _due_memberships(session_factory, clock(), 130)
    dispatcher = RecordingDispatcher()
    with UnitOfWork(session_factory, dispatcher, Policy(sweep_batch_size=50)) as uow:
        report = sweep.sweep(uow, clock)
    assert report.expired == 130
    # Then each has exactly one membership.purge_pending event, with its user and due time
    with session_factory() as session:
        events = list(session.scalars(select(Event)))
        versions = dict(session.execute(select(Membership.id, Membership.version)).all())
        users = dict(session.execute(select(Membership.id, Membership.user_id)).all())
    assert Counter(e.membership_id for e in events) == Counter(ids)
    for event in events:
        data = json.loads(event.payload)["data"]
        assert event.type == "membership.purge_pending"
        assert data["lifecycleEvent"] == "expire_retention"
        assert data["version"] == versions[event.membership_id] == 4
        assert data["user"]["id"] == users[event.membership_id]
        assert data["user"]["email"] == _email(users[event.membership_id])
        assert (
            data["removalDueBy"].endswith("Z") and data["organization"]["domain"] == "due.example"
        )
    assert len({e.event_id for e in events}) == 130
    # When the sweep runs again, nothing moves and nothing more is written
    with UnitOfWork(session_factory, dispatcher, Policy(sweep_batch_size=50)) as uow:
        assert sweep.sweep(uow, clock).expired == 0
    with session_factory() as session:
        assert len(session.scalars(select(Event.id)).all()) == 130


class _BatchFault(Exception):
    pass


def _fail_in_the_transaction_of(monkeypatch: Any, to_state: str, at_call: int) -> None:
    """The ``at_call``-th state change into ``to_state`` fails after its events were
    written, inside its transaction (the rows every change writes after the outbox's)."""
    from store import notices

    calls = Counter[str]()
    original = notices.after_transition

    def failing(session: Any, transition: Any, moved: Any) -> None:
        if transition.to_state == to_state:
            calls[to_state] += 1
            written = session.scalars(
                select(Event.membership_id).where(
                    Event.type == membership_event_type(to_state),
                    Event.membership_id.in_(list(moved)),
                )
            ).all()
            assert sorted(written) == sorted(moved)  # this change's events are written
            if calls[to_state] == at_call:
                raise _BatchFault(f"change {at_call} into {to_state} fails")
        original(session, transition, moved)

    monkeypatch.setattr(notices, "after_transition", failing)


def test_a_sweep_batch_rolled_back_leaves_no_event(session_factory, clock, monkeypatch):
    # Given 130 memberships past their retention period, swept in batches of 50, and the
    # second batch fails after writing its events
    ids = _due_memberships(session_factory, clock(), 130)
    _fail_in_the_transaction_of(monkeypatch, "purge-pending", at_call=2)
    policy = Policy(sweep_batch_size=50)
    with (
        UnitOfWork(session_factory, RecordingDispatcher(), policy) as uow,
        pytest.raises(_BatchFault),
    ):
        retention.expire_due_retentions(uow, clock)
    # Then the first batch's 50 moves have their 50 events, the failed batch none
    with session_factory() as session:
        moved = set(
            session.scalars(select(Membership.id).where(Membership.state == "purge-pending"))
        )
        events = list(session.scalars(select(Event.membership_id)))
    assert len(moved) == 50 and Counter(events) == Counter(moved)
    # And once the fault is gone, the next sweep writes exactly one event for each of the rest
    monkeypatch.undo()
    with UnitOfWork(session_factory, RecordingDispatcher(), policy) as uow:
        assert sweep.sweep(uow, clock).expired == 80
    with session_factory() as session:
        assert Counter(session.scalars(select(Event.membership_id))) == Counter(ids)


def test_a_chunked_finish_rolled_back_leaves_no_event(world, monkeypatch):
    # Given ann and pat purge-pending in open, their data removed as one chunk, and the
    # transaction that would purge them fails after writing its events
    ann, pat = world.membership("open", "ann"), world.membership("open", "pat")
    gadmin = world.principal("gadmin")
    for step, who in ((admin.remove, ann), (admin.purge, ann), (admin.remove, pat)):
        with world.uow() as uow:
            step(uow, world.clock, gadmin, "open.example", who)
    _fail_in_the_transaction_of(monkeypatch, "purged", at_call=1)
    with world.uow() as uow, pytest.raises(_BatchFault):
        while not removal.remove_chunk_batch(uow, world.clock, [ann, pat]).done:
            pass
    # Then neither is purged, no purged event exists, and their events still name them
    with world.uow() as uow:
        states = set(
            uow.session.scalars(select(Membership.state).where(Membership.id.in_([ann, pat])))
        )
    assert states == {"purge-pending"}
    assert [e for e in _events(world.uow) if e.type == "membership.purged"] == []
    assert all("user" in json.loads(e.payload)["data"] for e in _events(world.uow))
    # And the finish, run again without the fault, writes exactly one purged event each
    monkeypatch.undo()
    with world.uow() as uow:
        while not removal.remove_chunk_batch(uow, world.clock, [ann, pat]).done:
            pass
    purged = [e.membership_id for e in _events(world.uow) if e.type == "membership.purged"]
    assert sorted(purged) == sorted([ann, pat])
    assert _membership_events(world) == _transitions_audited(world)


def test_the_chunked_removal_finish_writes_one_purged_event_each_and_redacts(world):
    # Given ann (collaboration) and pat (direct connect) both purge-pending in open
    ann, pat = world.membership("open", "ann"), world.membership("open", "pat")
    gadmin = world.principal("gadmin")
    with world.uow() as uow:
        admin.remove(uow, world.clock, gadmin, "open.example", ann)
    with world.uow() as uow:
        admin.purge(uow, world.clock, gadmin, "open.example", ann)
    with world.uow() as uow:
        admin.remove(uow, world.clock, gadmin, "open.example", pat)
    # When their data is removed as one chunk, to the end
    with world.uow() as uow:
        while not removal.remove_chunk_batch(uow, world.clock, [ann, pat]).done:
            pass
    # Then each has exactly one purged event, and every event matches a committed move
    audited = _transitions_audited(world)
    assert _membership_events(world) == audited
    purged = [e for e in _events(world.uow) if e.type == "membership.purged"]
    assert sorted(e.membership_id for e in purged) == sorted([ann, pat])
    # And no event of either names its user any more
    for event in _events(world.uow):
        assert "user" not in json.loads(event.payload)["data"]
        assert world.users["ann"] not in event.payload and world.users["pat"] not in event.payload


def test_a_settings_change_writes_one_event_in_its_transaction(world):
    # Given open's admin turns self-service leave off, then saves it unchanged
    gadmin = world.principal("gadmin")
    with world.uow() as uow:
        admin.set_external_user_leave_allowed(uow, world.clock, gadmin, "open.example", False)
    with world.uow() as uow:
        admin.set_external_user_leave_allowed(uow, world.clock, gadmin, "open.example", False)
    # And changes the privacy profile
    with world.uow() as uow:
        admin.set_privacy_profile(
            uow, world.clock, gadmin, "open.example", "dpo@open.example", "https://open.example/p2"
        )
    # Then two events: one per change, none for the save that changed nothing
    events = _events(world.uow, type="organization.settings_changed")
    assert len(events) == 2
    first, second = (json.loads(e.payload) for e in events)
    assert first["data"]["organization"] == {"id": world.orgs["open"], "domain": "open.example"}
    assert first["data"]["changed"] == ["externalUserLeaveAllowed"]
    assert first["data"]["settings"]["externalUserLeaveAllowed"] is False
    assert first["data"]["previous"] == {"externalUserLeaveAllowed": True}
    assert second["data"]["changed"] == ["privacyContactEmail", "privacyStatementUrl"]
    assert second["data"]["settings"]["privacyContactEmail"] == "dpo@open.example"
    assert all(e.membership_id is None for e in events)
    # And a refused change (no privacy profile in bare) writes none
    with world.uow() as uow, pytest.raises(Exception):  # noqa: B017,PT011
        admin.set_external_user_leave_allowed(
            uow, world.clock, world.principal("bareadmin"), "bare.example", False
        )
    assert len(_events(world.uow, type="organization.settings_changed")) == 2


def test_record_event_refuses_an_unknown_type(world):
    with world.uow() as uow, pytest.raises(ValueError, match="unknown event type"):
        uow.outbox.record_event(
            type="membership.created",
            organization_id=world.orgs["open"],
            membership_id=None,
            occurred_at=world.clock(),
            data={},
        )
