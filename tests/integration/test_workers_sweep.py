"""The durable timers' sweep: set-based transitions that agree with the per-row rules,
batches, re-drive of lost work, overdue removals, and concurrent sweepers."""

from __future__ import annotations

import itertools
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select
from statemachine.exceptions import TransitionNotAllowed as MachineTransitionNotAllowed

from memberships import automatic, idempotency, redrive, self_service, sweep
from memberships.automatic import WORKER
from memberships.batches import apply_event_to_batch
from memberships.decisions import apply_event
from memberships.errors import TransitionNotAllowed
from statemachines.membership import (
    EVENTS,
    MembershipKind,
    MembershipState,
    next_state,
    transition_table,
)
from store.models import (
    AuditEvent,
    IdempotencyKey,
    Membership,
    Organization,
    User,
    WebhookEndpoint,
)
from store.transitions import FAN_OUT_AFTER_COMMIT_UP_TO, Claimed
from store.unit_of_work import Policy, RecordingDispatcher, UnitOfWork

COMPARED_FIELDS = (
    "state",
    "version",
    "leave_requested_at",
    "soft_deleted_at",
    "purge_due_at",
    "restored_at",
    "purge_started_at",
    "removal_due_by",
    "purged_at",
    "last_progress_at",
    "attempts",
    "last_error",
)


def insert_memberships(session_factory, clock, specs, **fields) -> list[str]:
    """Bulk-insert one membership per (state, kind) spec, each for a user of its own."""
    now = clock()
    org_id = str(uuid.uuid4())
    rows, users = [], []
    for state, kind in specs:
        user_id = str(uuid.uuid4())
        users.append(
            {"id": user_id, "email": f"{user_id}@x.example", "display_name": "U", "created_at": now}
        )
        rows.append(
            {
                "id": str(uuid.uuid4()),
                "user_id": user_id,
                "organization_id": org_id,
                "kind": kind,
                "state": state,
                "version": 3,
                "email": f"{user_id}@x.example",
                "display_name": "U",
                "created_at": now,
                "attempts": 2,
                "last_error": "earlier failure",
                "last_progress_at": now - timedelta(hours=1),
                **fields,
            }
        )
    with session_factory() as session, session.begin():
        session.execute(
            insert(Organization),
            [{"id": org_id, "domain": f"{org_id}.example", "display_name": "O", "created_at": now}],
        )
        for start in range(0, len(users), 5000):
            session.execute(insert(User), users[start : start + 5000])
            session.execute(insert(Membership), rows[start : start + 5000])
    return [r["id"] for r in rows]


def _snapshot(session, membership_id):
    m = session.get(Membership, membership_id)
    fields = {name: getattr(m, name) for name in COMPARED_FIELDS}
    fields["personal_fields_erased"] = (m.email, m.display_name) == (None, None)
    trail = [
        (e.actor, e.action, e.outcome, e.from_state, e.to_state)
        for e in session.scalars(
            select(AuditEvent).where(AuditEvent.membership_id == membership_id)
        )
    ]
    return fields, trail


def test_transition_table_is_read_off_the_machine():
    # Given the machine, When the table is derived
    table = transition_table()
    # Then it holds exactly what next_state allows, e.g. both kinds of expire_retention
    for state, kind, event in itertools.product(MembershipState, MembershipKind, EVENTS):
        try:
            expected = next_state(state.value, kind.value, event)
        except MachineTransitionNotAllowed:
            assert (state.value, event, kind.value) not in table
        else:
            assert table[(state.value, event, kind.value)] == expected
    assert table[("soft-deleted", "expire_retention", "b2b-collaboration")] == "purge-pending"
    assert table[("leave-pending", "complete_leave", "b2b-collaboration")] == "soft-deleted"
    assert table[("leave-pending", "complete_leave", "b2b-direct-connect")] == "purge-pending"


def test_batch_path_and_per_row_path_agree_on_every_state_event_and_kind(
    session_factory, clock, policy
):
    # Given two identical memberships for every (state, kind), one per path and per event
    combos = list(itertools.product(MembershipState, MembershipKind, EVENTS))
    specs = [(state.value, kind.value) for state, kind, _ in combos]
    per_row_ids = insert_memberships(session_factory, clock, specs)
    batch_ids = insert_memberships(session_factory, clock, specs)
    now = clock()
    # When each event is applied per row (memberships.decisions.apply_event) ...
    per_row_dispatcher = RecordingDispatcher()
    for (_state, _kind, event), membership_id in zip(combos, per_row_ids, strict=True):
        with UnitOfWork(session_factory, per_row_dispatcher, policy) as uow:
            membership = uow.session.get(Membership, membership_id)
            try:
                apply_event(uow, now, WORKER, membership, event)
                uow.commit()
            except TransitionNotAllowed:
                pass
    # ... and to the batch twins, one batch per (state, event) with every kind in it
    dispatcher = RecordingDispatcher()
    by_state_event = {}
    for (state, kind, event), membership_id in zip(combos, batch_ids, strict=True):
        by_state_event.setdefault((state.value, event), []).append(
            Claimed(membership_id, kind.value, "", 0)
        )
    with UnitOfWork(session_factory, dispatcher, policy) as uow:
        for (state, event), rows in by_state_event.items():
            org = uow.session.get(Membership, rows[0].id).organization_id
            claimed = [
                Claimed(r.id, r.kind, org, uow.session.get(Membership, r.id).version) for r in rows
            ]
            apply_event_to_batch(uow, now, event, state, claimed)
        uow.commit()

    # Then every pair ends identical: state, version, timestamps, erased fields, audit
    # rows for allowed transitions (denials are the per-row path's business only), and
    # the follow-up work sent after the commit; a refused pair changed nothing at all
    def follow_ups(recorder, membership_id):
        return [actor for actor, i in recorder.sent if i == membership_id]

    allowed = refused = 0
    with session_factory() as session:
        for (state, kind, event), a, b in zip(combos, per_row_ids, batch_ids, strict=True):
            fields_a, trail_a = _snapshot(session, a)
            fields_b, trail_b = _snapshot(session, b)
            where = (state, kind, event)
            assert fields_a == fields_b, where
            assert [t for t in trail_a if t[2] == "allowed"] == trail_b, where
            assert follow_ups(per_row_dispatcher, a) == follow_ups(dispatcher, b), where
            if (state.value, event, kind.value) in transition_table():
                allowed += 1
                assert trail_b and fields_b["version"] == 4, where
            else:
                refused += 1
                assert not trail_b and fields_b["state"] == state.value, where
                assert fields_b["version"] == 3, where
    # And both kinds of pair were met: every allowed triple, and the refused rest
    assert allowed == len(transition_table())
    assert allowed + refused == len(combos) and refused > 0


def _soft_delete_by_leaving(world, user="ann", org="open"):
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal(user), org + ".example")
    membership_id = world.membership(org, user)
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, membership_id)
    return membership_id


def _audit_count(world, membership_id, action):
    with world.uow() as uow:
        return uow.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.membership_id == membership_id,
                AuditEvent.action == action,
                AuditEvent.outcome == "allowed",
            )
        )


def test_sweep_expires_a_retention_period_only_once_it_has_ended(world, dispatcher):
    # Given ann left open: soft-deleted, purge due in 30 days
    membership_id = _soft_delete_by_leaving(world)
    dispatcher.sent.clear()
    # When the sweep runs a second before the due time
    world.clock.advance(timedelta(days=30) - timedelta(seconds=1))
    with world.uow() as uow:
        early = sweep.sweep(uow, world.clock)
    # Then nothing happens
    assert early.expired == 0 and dispatcher.sent == []
    # When it runs two seconds later, twice
    world.clock.advance(timedelta(seconds=2))
    with world.uow() as uow:
        due = sweep.sweep(uow, world.clock)
    with world.uow() as uow:
        again = sweep.sweep(uow, world.clock)
    # Then the membership is purge-pending once, audited once, and data removal was sent
    assert (due.expired, again.expired) == (1, 0)
    with world.uow() as uow:
        m = uow.session.get(Membership, membership_id)
        assert m.state == "purge-pending"
        assert m.removal_due_by == world.clock() + timedelta(days=30)
    assert _audit_count(world, membership_id, "expire_retention") == 1
    assert dispatcher.sent == [("remove_data", membership_id)]


def test_a_batch_moves_only_rows_still_at_the_version_they_were_claimed_at(session_factory, clock):
    # Given three soft-deleted memberships: two claimed at version 3, of which one changes
    # afterwards to version 4 (as only a writer that ignores the row locks could), and one
    # claimed at version 4 (each row's version is compared with its own claim, not with
    # any claimed version)
    fresh, changed, later = insert_memberships(
        session_factory, clock, [("soft-deleted", "b2b-collaboration")] * 3
    )
    with session_factory() as session, session.begin():
        org = session.get(Membership, fresh).organization_id
        session.get(Membership, later).version = 4
    claimed = [Claimed(i, "b2b-collaboration", org, 3) for i in (fresh, changed)]
    claimed.append(Claimed(later, "b2b-collaboration", org, 4))
    with session_factory() as session, session.begin():
        session.get(Membership, changed).version = 4
    # When the batch fires expire_retention on what was claimed
    dispatcher = RecordingDispatcher()
    with UnitOfWork(session_factory, dispatcher, Policy()) as uow:
        moved = apply_event_to_batch(uow, clock(), "expire_retention", "soft-deleted", claimed)
        uow.commit()
    # Then the compare-and-set leaves the changed row alone: not moved, not audited
    assert sorted(m.id for m in moved) == sorted([fresh, later])
    with session_factory() as session:
        assert session.get(Membership, fresh).state == "purge-pending"
        assert session.get(Membership, later).state == "purge-pending"
        assert session.get(Membership, changed).state == "soft-deleted"
        audited = session.scalars(
            select(AuditEvent.membership_id).where(AuditEvent.action == "expire_retention")
        ).all()
    assert sorted(audited) == sorted([fresh, later])
    assert sorted(dispatcher.sent) == sorted([("remove_data", fresh), ("remove_data", later)])


def test_a_batch_leaves_a_row_that_is_not_in_the_state_it_moves_from(session_factory, clock):
    # Given an active membership at version 3, handed to a batch of soft-deleted rows at
    # that version (the compare-and-set matches the state too, not only the version)
    [active] = insert_memberships(session_factory, clock, [("active", "b2b-collaboration")])
    with session_factory() as session:
        org = session.get(Membership, active).organization_id
    # When the batch fires expire_retention from soft-deleted
    dispatcher = RecordingDispatcher()
    with UnitOfWork(session_factory, dispatcher, Policy()) as uow:
        claimed = [Claimed(active, "b2b-collaboration", org, 3)]
        moved = apply_event_to_batch(uow, clock(), "expire_retention", "soft-deleted", claimed)
        uow.commit()
    # Then nothing moved, nothing was audited or sent
    assert moved == [] and dispatcher.sent == []
    with session_factory() as session:
        row = session.get(Membership, active)
        assert (row.state, row.version) == ("active", 3)
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def _audit_rows(session_factory, action):
    with session_factory() as session:
        return {
            e.membership_id: (
                e.organization_id,
                e.occurred_at,
                e.actor,
                e.outcome,
                e.from_state,
                e.to_state,
                e.reason,
                e.request_id,
            )
            for e in session.scalars(select(AuditEvent).where(AuditEvent.action == action))
        }


def test_every_audit_row_of_a_batch_names_its_membership_s_organization_the_time_and_request(
    session_factory, clock
):
    # Given due soft-deleted memberships in two organizations, claimed by a worker's batch
    # at 9:00 and swept (on PostgreSQL claimed, moved and audited in one statement) at 9:05
    # by a tick with an id of its own
    due = clock() - timedelta(minutes=1)
    spec = [("soft-deleted", "b2b-collaboration")] * 2
    batched = insert_memberships(session_factory, clock, spec) + insert_memberships(
        session_factory, clock, spec
    )
    swept = insert_memberships(session_factory, clock, spec, purge_due_at=due)
    swept += insert_memberships(session_factory, clock, spec, purge_due_at=due)
    with session_factory() as session:
        org_of = dict(session.execute(select(Membership.id, Membership.organization_id)).all())
    assert len(set(org_of.values())) == 4
    batched_at = clock()
    with UnitOfWork(session_factory, RecordingDispatcher(), Policy(), "request-1") as uow:
        claimed = [Claimed(i, "b2b-collaboration", org_of[i], 3) for i in batched]
        moved = apply_event_to_batch(uow, batched_at, "restore", "soft-deleted", claimed)
        uow.commit()
    swept_at = clock.advance(timedelta(minutes=5))
    with UnitOfWork(session_factory, RecordingDispatcher(), Policy(), "tick-1") as uow:
        assert sweep.sweep(uow, clock).expired == 4
    # Then the batch says which rows moved, from where to where
    assert sorted((m.id, m.to_state) for m in moved) == sorted((i, "restored") for i in batched)
    # And each audit row carries its own membership's organization, the batch's time and
    # actor, the states and the request or tick id
    restored = ("worker", "allowed", "soft-deleted", "restored", None, "request-1")
    expired = ("worker", "allowed", "soft-deleted", "purge-pending", None, "tick-1")
    assert _audit_rows(session_factory, "restore") == {
        i: (org_of[i], batched_at, *restored) for i in batched
    }
    assert _audit_rows(session_factory, "expire_retention") == {
        i: (org_of[i], swept_at, *expired) for i in swept
    }


@pytest.mark.parametrize("size", [FAN_OUT_AFTER_COMMIT_UP_TO, FAN_OUT_AFTER_COMMIT_UP_TO + 1])
def test_a_batch_asks_for_the_fan_out_after_its_commit_up_to_50_rows_and_leaves_more_to_the_sweep(
    session_factory, clock, size
):
    # Given 50 (or 51) soft-deleted memberships of an organization with a webhook endpoint
    ids = insert_memberships(session_factory, clock, [("soft-deleted", "b2b-collaboration")] * size)
    with session_factory() as session, session.begin():
        org = session.get(Membership, ids[0]).organization_id
        session.add(
            WebhookEndpoint(
                organization_id=org,
                url="https://crm.example/hook",
                secret="s" * 32,
                created_at=clock(),
                updated_at=clock(),
            )
        )
    # When one batch restores them all
    dispatcher = RecordingDispatcher()
    with UnitOfWork(session_factory, dispatcher, Policy()) as uow:
        claimed = [Claimed(i, "b2b-collaboration", org, 3) for i in ids]
        assert len(apply_event_to_batch(uow, clock(), "restore", "soft-deleted", claimed)) == size
        uow.commit()
    # Then 50 moved rows ask for one fan-out right after the commit, naming one of them;
    # 51 leave it to the sweep, which fans out in the same tick
    fan_outs = [i for actor, i in dispatcher.sent if actor == "fan_out_events"]
    assert FAN_OUT_AFTER_COMMIT_UP_TO == 50
    if size == 50:
        assert len(fan_outs) == 1 and fan_outs[0] in ids
    else:
        assert fan_outs == []


def test_sweep_commits_in_batches_of_the_configured_size(session_factory, clock):
    # Given 120 memberships past their purge due time and batches of 50
    ids = insert_memberships(
        session_factory,
        clock,
        [("soft-deleted", "b2b-collaboration")] * 120,
        purge_due_at=clock() - timedelta(minutes=1),
    )
    dispatcher = RecordingDispatcher()
    # When one sweep runs
    with UnitOfWork(session_factory, dispatcher, Policy(sweep_batch_size=50)) as uow:
        report = sweep.sweep(uow, clock)
    # Then all 120 moved in 3 committed batches, each with its data removal sent once
    assert (report.expired, report.batches) == (120, 3)
    assert sorted(i for _, i in dispatcher.sent) == sorted(ids)
    with session_factory() as session:
        states = session.scalars(select(Membership.state).where(Membership.id.in_(ids))).all()
        audited = session.scalar(
            select(func.count(func.distinct(AuditEvent.membership_id))).where(
                AuditEvent.action == "expire_retention"
            )
        )
    assert set(states) == {"purge-pending"} and audited == 120


def test_a_sweep_moves_the_longest_due_first_down_to_the_one_due_this_instant(
    session_factory, clock
):
    # Given three memberships whose purge is due now, a minute ago and two minutes ago,
    # inserted in that order, and batches of one
    ids = [
        insert_memberships(
            session_factory,
            clock,
            [("soft-deleted", "b2b-collaboration")],
            purge_due_at=clock() - timedelta(minutes=minutes),
        )[0]
        for minutes in (0, 1, 2)
    ]
    dispatcher = RecordingDispatcher()
    # When one sweep runs
    with UnitOfWork(session_factory, dispatcher, Policy(sweep_batch_size=1)) as uow:
        report = sweep.sweep(uow, clock)
    # Then it moved them one batch each, the longest due first, each audited on its own
    # organization
    assert (report.expired, report.batches) == (3, 3)
    assert dispatcher.sent == [("remove_data", i) for i in reversed(ids)]
    with session_factory() as session:
        audited = session.execute(
            select(AuditEvent.membership_id, AuditEvent.organization_id).where(
                AuditEvent.action == "expire_retention"
            )
        ).all()
        organizations = {i: session.get(Membership, i).organization_id for i in ids}
    assert dict(audited) == organizations and len(set(organizations.values())) == 3


def test_sweep_redrives_stalled_work_once_per_redrive_period(session_factory, clock):
    # Given a leave-pending and a purge-pending membership whose messages were lost an
    # hour ago, and a fresh leave-pending one
    stalled = insert_memberships(
        session_factory,
        clock,
        [("leave-pending", "b2b-collaboration"), ("purge-pending", "b2b-direct-connect")],
    )
    fresh = insert_memberships(
        session_factory, clock, [("leave-pending", "b2b-collaboration")], last_progress_at=clock()
    )
    dispatcher = RecordingDispatcher()
    policy = Policy(redrive_after=timedelta(minutes=1))

    def tick():
        with UnitOfWork(session_factory, dispatcher, policy) as uow:
            return sweep.sweep(uow, clock)

    # When the sweep runs, again right away, and again after the re-drive period
    first = tick()
    second = tick()
    clock.advance(timedelta(minutes=1, seconds=1))
    third = tick()
    # Then the stalled ones are sent once per period; the fresh one only once it stalls
    assert dict(first.redriven) == {"complete_leave": 1, "remove_data": 1}
    assert dict(second.redriven) == {"complete_leave": 0, "remove_data": 0}
    assert dict(third.redriven) == {"complete_leave": 2, "remove_data": 1}
    assert dispatcher.sent[:2] == [("complete_leave", stalled[0]), ("remove_data", stalled[1])]
    assert ("complete_leave", fresh[0]) in dispatcher.sent[2:]
    # And re-driving is not a transition: no version change, no audit row
    with session_factory() as session:
        assert session.get(Membership, stalled[0]).version == 3
        assert session.scalar(select(func.count()).select_from(AuditEvent)) == 0


def test_a_redrive_sends_the_longest_stalled_first_and_touches_only_what_it_sent(
    session_factory, clock
):
    # Given leave-pending memberships with no progress for an hour, for two hours, ever,
    # for exactly the re-drive period (a minute), and for 30 s; batches of one
    def leave_pending(last_progress_at):
        return insert_memberships(
            session_factory,
            clock,
            [("leave-pending", "b2b-collaboration")],
            last_progress_at=last_progress_at,
        )[0]

    now = clock()
    hour = leave_pending(now - timedelta(hours=1))
    two_hours = leave_pending(now - timedelta(hours=2))
    never = leave_pending(None)
    boundary = leave_pending(now - timedelta(minutes=1))
    recent = leave_pending(now - timedelta(seconds=30))
    dispatcher = RecordingDispatcher()
    policy = Policy(redrive_after=timedelta(minutes=1), sweep_batch_size=1)

    def tick():
        dispatcher.sent.clear()
        with UnitOfWork(session_factory, dispatcher, policy) as uow:
            sweep.sweep(uow, clock)
        return [membership_id for _, membership_id in dispatcher.sent]

    # When the sweep runs, Then it sends the stalled ones, longest stalled first (where
    # the one without progress sorts depends on the database), and not the one at the
    # cutoff
    sent = tick()
    assert [m for m in sent if m != never] == [two_hours, hour]
    assert sorted(sent) == sorted([two_hours, hour, never])
    # When it runs again 31 s later, Then it sends the two it left alone, oldest first:
    # it touched only what it sent
    clock.advance(timedelta(seconds=31))
    assert tick() == [boundary, recent]


def test_removals_past_their_window_are_counted_and_still_redriven(session_factory, clock):
    # Given a purge-pending membership whose removal window ended yesterday
    [late] = insert_memberships(
        session_factory,
        clock,
        [("purge-pending", "b2b-collaboration")],
        removal_due_by=clock() - timedelta(days=1),
    )
    dispatcher = RecordingDispatcher()
    # When the sweep runs
    with UnitOfWork(session_factory, dispatcher, Policy()) as uow:
        report = sweep.sweep(uow, clock)
    # Then it is counted overdue, and its removal is sent again rather than dropped
    assert report.overdue_removals == 1
    assert dispatcher.sent == [("remove_data", late)]


def test_only_purge_pending_memberships_past_their_window_count_as_overdue(session_factory, clock):
    # Given purge-pending memberships whose removal window ended a second ago, ends this
    # instant and ends in a second, and a purged one whose window ended long ago
    def membership(state, removal_due_by):
        insert_memberships(
            session_factory, clock, [(state, "b2b-collaboration")], removal_due_by=removal_due_by
        )

    for seconds in (-1, 0, 1):
        membership("purge-pending", clock() + timedelta(seconds=seconds))
    membership("purged", clock() - timedelta(days=1))
    # When the sweep counts the overdue removals, Then only the first is overdue
    with UnitOfWork(session_factory, RecordingDispatcher(), Policy()) as uow:
        assert redrive.count_overdue_removals(uow, clock()) == 1
    # And with none past its window, none is
    with UnitOfWork(session_factory, RecordingDispatcher(), Policy()) as uow:
        assert redrive.count_overdue_removals(uow, clock() - timedelta(days=2)) == 0


def test_a_redrive_sends_at_most_a_batch_before_it_asks_whether_to_go_on(session_factory, clock):
    # Given three leave-pending memberships with no progress for an hour, batches of two
    insert_memberships(session_factory, clock, [("leave-pending", "b2b-collaboration")] * 3)
    dispatcher = RecordingDispatcher()
    policy = Policy(redrive_after=timedelta(minutes=1), sweep_batch_size=2)
    # When a re-drive may run one batch only (the tick's time is up after it)
    allowed = iter([True])
    with UnitOfWork(session_factory, dispatcher, policy) as uow:
        sent = redrive.redrive_stalled(uow, clock, should_continue=lambda: next(allowed, False))
    # Then it sent two
    assert sent == {"complete_leave": 2, "remove_data": 0}
    assert len(dispatcher.sent) == 2


def test_a_sweep_writes_its_tick_id_into_the_audit_rows(session_factory, clock):
    # Given one due membership
    [due] = insert_memberships(
        session_factory,
        clock,
        [("soft-deleted", "b2b-collaboration")],
        purge_due_at=clock() - timedelta(seconds=1),
    )
    # When a sweep runs
    with UnitOfWork(session_factory, RecordingDispatcher(), Policy()) as uow:
        report = sweep.sweep(uow, clock)
    # Then the audit row carries the tick's id, like a request id
    with session_factory() as session:
        event = session.scalar(select(AuditEvent).where(AuditEvent.membership_id == due))
    assert report.tick_id.startswith("sweep-") and event.request_id == report.tick_id


# SKIP LOCKED concurrency is a PostgreSQL property.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_sweepers_at_once_transition_each_due_membership_exactly_once(
    database_url, session_factory, clock
):
    # Given 3000 due memberships on PostgreSQL, and small batches so the sweepers interleave
    ids = insert_memberships(
        session_factory,
        clock,
        [("soft-deleted", "b2b-collaboration")] * 3000,
        purge_due_at=clock() - timedelta(minutes=1),
    )
    dispatchers = [RecordingDispatcher(), RecordingDispatcher()]
    reports = []
    start = threading.Barrier(2)

    def run(dispatcher):
        with UnitOfWork(session_factory, dispatcher, Policy(sweep_batch_size=100)) as uow:
            start.wait()
            reports.append(sweep.sweep(uow, clock))

    # When two sweepers run at the same time
    threads = [threading.Thread(target=run, args=(d,)) for d in dispatchers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    # Then each membership was moved, audited and sent for removal exactly once
    assert sum(r.expired for r in reports) == 3000
    assert all(r.expired > 0 for r in reports), "both sweepers should have taken batches"
    sent = [i for d in dispatchers for _, i in d.sent]
    assert sorted(sent) == sorted(ids)
    with session_factory() as session:
        rows = session.execute(
            select(AuditEvent.membership_id, func.count())
            .where(AuditEvent.action == "expire_retention")
            .group_by(AuditEvent.membership_id)
        ).all()
    assert len(rows) == 3000 and {count for _, count in rows} == {1}


def test_the_sweep_forgets_expired_idempotency_keys_batch_by_batch_and_keeps_live_ones(
    session_factory, clock, monkeypatch
):
    # Given 120 idempotency keys that expired an hour ago and one still live, batches of
    # 50 and at most two batches per tick
    now = clock()
    rows = [
        {
            "principal_id": "user-1",
            "key": f"key-{i}",
            "request_hash": "h",
            "created_at": now - timedelta(days=2),
            "expires_at": now - timedelta(hours=1),
        }
        for i in range(120)
    ]
    rows.append({**rows[0], "key": "live", "expires_at": now + timedelta(hours=1)})
    with session_factory() as session, session.begin():
        session.execute(insert(IdempotencyKey), rows)
    monkeypatch.setattr(idempotency, "KEY_BATCHES_PER_TICK", 2)

    def tick():
        with UnitOfWork(session_factory, RecordingDispatcher(), Policy(sweep_batch_size=50)) as uow:
            return sweep.sweep(uow, clock)

    # When the sweep ticks twice
    first, second = tick(), tick()
    # Then the first tick deletes two batches, the second the rest, and the live key stays
    assert (first.forgotten_keys, second.forgotten_keys) == (100, 20)
    with session_factory() as session:
        assert session.scalars(select(IdempotencyKey.key)).all() == ["live"]


def test_a_sweep_on_several_connections_moves_each_due_membership_exactly_once(
    database_url, session_factory, clock
):
    # Given 1000 due memberships and a sweep allowed three connections, batches of 50
    ids = insert_memberships(
        session_factory,
        clock,
        [("soft-deleted", "b2b-collaboration")] * 1000,
        purge_due_at=clock() - timedelta(minutes=1),
    )
    dispatcher = RecordingDispatcher()
    policy = Policy(sweep_batch_size=50)
    opened = []

    def open_uow():
        opened.append(1)
        return UnitOfWork(session_factory, dispatcher, policy)

    # When it runs
    with UnitOfWork(session_factory, dispatcher, policy) as uow:
        report = sweep.sweep(uow, clock, open_uow=open_uow, concurrency=3)
    # Then every membership moved once, with one audit row and one removal sent, all under
    # the tick's id; on PostgreSQL the extra connections were used, on SQLite not
    assert report.expired == 1000 and report.batches >= 20
    assert sorted(i for _, i in dispatcher.sent) == sorted(ids)
    with session_factory() as session:
        rows = session.execute(
            select(AuditEvent.membership_id, func.count(), func.min(AuditEvent.request_id))
            .where(AuditEvent.action == "expire_retention")
            .group_by(AuditEvent.membership_id)
        ).all()
        versions = set(session.scalars(select(Membership.version).where(Membership.id.in_(ids))))
    assert len(rows) == 1000 and {count for _, count, _ in rows} == {1}
    assert {tick for _, _, tick in rows} == {report.tick_id} and versions == {4}
    assert len(opened) == (2 if database_url.startswith("postgresql") else 0)


def test_a_sweep_on_several_connections_told_to_stop_takes_no_batch_on_any(
    database_url, session_factory, clock
):
    # Given 100 due memberships and a sweep allowed three connections, batches of 10
    ids = insert_memberships(
        session_factory,
        clock,
        [("soft-deleted", "b2b-collaboration")] * 100,
        purge_due_at=clock() - timedelta(minutes=1),
    )
    dispatcher = RecordingDispatcher()
    policy = Policy(sweep_batch_size=10)
    # When it runs while its scheduler is stopping
    with UnitOfWork(session_factory, dispatcher, policy) as uow:
        report = sweep.sweep(
            uow,
            clock,
            should_continue=lambda: False,
            open_uow=lambda: UnitOfWork(session_factory, dispatcher, policy),
            concurrency=3,
        )
    # Then no connection took a batch: everything is left for the next sweeper
    assert (report.expired, report.batches) == (0, 0) and dispatcher.sent == []
    with session_factory() as session:
        states = set(session.scalars(select(Membership.state).where(Membership.id.in_(ids))))
    assert states == {"soft-deleted"}


# The extra connections are used on PostgreSQL only (claims_in_parallel).
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_error_on_an_extra_connection_of_a_sweep_is_raised_by_the_sweep(
    database_url, session_factory, clock
):
    # Given one due membership and a sweep allowed two connections, the second of which
    # cannot be opened
    insert_memberships(
        session_factory,
        clock,
        [("soft-deleted", "b2b-collaboration")],
        purge_due_at=clock() - timedelta(minutes=1),
    )

    def open_uow():
        raise ConnectionRefusedError("no second connection")

    # When it runs, then the sweep fails with that connection's error
    with (
        UnitOfWork(session_factory, RecordingDispatcher(), Policy()) as uow,
        pytest.raises(ConnectionRefusedError, match="no second connection"),
    ):
        sweep.sweep(uow, clock, open_uow=open_uow, concurrency=2)
