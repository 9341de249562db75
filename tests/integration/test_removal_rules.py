"""docs/domain.md, "What happens by itself": the end of the retention period, staged data
removal in bounded batches, and the tombstone that is all a purge leaves."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import String, Text, func, select
from sqlalchemy.orm import Session

from memberships import (
    admin,
    automatic,
    failures,
    invitations,
    message_handlers,
    provisioning,
    reading,
    self_service,
)
from memberships.errors import NotFound, TransitionNotAllowed
from memberships.principal import SYSTEM, Principal
from memberships.removal import (
    BUILT_IN_REMOVERS,
    ChunkProgress,
    Remover,
    remove_all_data,
    remove_chunk_batch,
    remove_data_batch,
)
from memberships.views import to_dict
from store.data_removal import TableRemover
from store.models import AuditEvent, Base, Grant, Invitation, MemberData, Membership, User
from store.unit_of_work import Policy, UnitOfWork

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import World

RETENTION = timedelta(days=30)
REMOVAL_WINDOW = timedelta(days=30)
BATCH = 50  # the ``policy`` fixture's removal batch size


def _row(world: World, membership_id: str) -> Membership:
    with world.uow() as uow:
        row = uow.session.get(Membership, membership_id)
        assert row is not None
        uow.session.expunge(row)
        return row


def _count(world: World, model: type[Grant] | type[MemberData], membership_id: str) -> int:
    with world.uow() as uow:
        return (
            uow.session.scalar(
                select(func.count()).select_from(model).where(model.membership_id == membership_id)
            )
            or 0
        )


def _purge_pending(world: World) -> str:
    membership_id = world.soft_delete()
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    return membership_id


# --- the end of the retention period -------------------------------------------------------


def test_retention_expires_only_when_the_purge_is_due(world: World, dispatcher: object) -> None:
    # Given ann's membership in open, soft-deleted now
    membership_id = world.soft_delete()
    due = _row(world, membership_id).purge_due_at
    assert due == world.clock() + RETENTION
    # When the timer fires a second early, Then nothing happens
    world.clock.advance(RETENTION - timedelta(seconds=1))
    with world.uow() as uow:
        assert automatic.expire_retention(uow, world.clock, membership_id) is None
    assert _row(world, membership_id).state == "soft-deleted"
    # When it fires at the due time
    world.clock.advance(timedelta(seconds=1))
    with world.uow() as uow:
        expired = automatic.expire_retention(uow, world.clock, membership_id)
    # Then permanent deletion starts by itself, due within the data-removal window
    assert expired is not None
    assert expired.state == "purge-pending"
    assert expired.purge_started_at == due
    assert expired.removal_due_by == due + REMOVAL_WINDOW
    assert ("remove_data", membership_id) in dispatcher.sent  # type: ignore[attr-defined]
    # And a second firing changes nothing
    version = _row(world, membership_id).version
    with world.uow() as uow:
        assert automatic.expire_retention(uow, world.clock, membership_id) is None
    assert _row(world, membership_id).version == version


@pytest.mark.parametrize("state", ["active", "restored"])
def test_retention_never_expires_for_a_membership_in_use(world: World, state: str) -> None:
    # Given an active membership, or one that was restored before its purge was due
    membership_id = world.membership("open", "ann")
    if state == "restored":
        world.soft_delete()
        with world.uow() as uow:
            admin.restore(uow, world.clock, SYSTEM, "open.example", membership_id)
    # When the timer fires long after the old due time, Then nothing happens
    world.clock.advance(RETENTION * 3)
    with world.uow() as uow:
        assert automatic.expire_retention(uow, world.clock, membership_id) is None
    assert _row(world, membership_id).state == state


# --- staged data removal -------------------------------------------------------------------


def test_data_removal_erases_in_bounded_batches_and_records_progress(world: World) -> None:
    # Given ann's purge-pending membership with 2 grants and 120 data rows
    membership_id = _purge_pending(world)
    # When a worker runs one batch at a time, each in its own transaction
    seen = []
    while True:
        at = world.clock.advance(timedelta(seconds=1))
        with world.uow() as uow:
            progress = remove_data_batch(uow, world.clock, membership_id)
        row = _row(world, membership_id)
        seen.append((progress.removed_now, progress.removed_total, row.state))
        if progress.done:
            break
        # Then every batch is bounded and its progress is stored on the membership
        assert progress.removed_now <= BATCH
        assert row.removed_rows == progress.removed_total
        assert row.last_progress_at == at
    assert seen == [
        (50, 50, "purge-pending"),
        (50, 100, "purge-pending"),
        (22, 122, "purge-pending"),
        (0, 122, "purged"),
    ]
    assert _count(world, Grant, membership_id) == 0
    assert _count(world, MemberData, membership_id) == 0
    # And a late message for the purged membership changes nothing
    with world.uow() as uow:
        late = remove_data_batch(uow, world.clock, membership_id)
    assert (late.done, late.removed_now, late.removed_total, late.state) == (
        True,
        0,
        122,
        "purged",
    )


def test_a_batch_for_a_membership_that_is_not_purge_pending_erases_nothing(world: World) -> None:
    # Given ann's active membership of open, with 2 grants and 120 data rows
    membership_id = world.membership("open", "ann")
    version = _row(world, membership_id).version
    # When a removal message reaches it (a stale one: she was restored since, say)
    with world.uow() as uow:
        progress = remove_data_batch(uow, world.clock, membership_id)
    # Then nothing is erased or changed, and there is nothing to do
    assert (progress.done, progress.state, progress.removed_now, progress.removed_total) == (
        True,
        "active",
        0,
        0,
    )
    assert (_count(world, Grant, membership_id), _count(world, MemberData, membership_id)) == (
        2,
        120,
    )
    assert _row(world, membership_id).version == version
    # And a message for a membership that does not exist is done with at once
    with world.uow() as uow:
        unknown = remove_data_batch(uow, world.clock, str(uuid.uuid4()))
    assert (unknown.done, unknown.state, unknown.removed_now, unknown.removed_total) == (
        True,
        None,
        0,
        0,
    )


class AppStore:
    """A deployment's own store, without the chunk methods: records per membership, and the
    limit of every call made to it."""

    def __init__(self, records: Mapping[str, int] | None = None, name: str = "app-store") -> None:
        self.name = name
        self.records = dict(records or {})
        self.limits: list[int] = []

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        self.limits.append(limit)
        removed = min(self.records.get(membership_id, 0), limit)
        self.records[membership_id] = self.records.get(membership_id, 0) - removed
        return removed

    def remaining(self, session: Session, membership_id: str) -> int:
        return self.records.get(membership_id, 0)


def test_a_remover_is_not_asked_once_the_batch_is_full(world: World) -> None:
    # Given ann's purge-pending membership (122 rows) and a deployment's store after the
    # service's own tables
    membership_id = _purge_pending(world)
    store = AppStore()
    # When the removal runs to the end, 50 rows a batch
    with world.uow() as uow:
        assert remove_all_data(uow, world.clock, membership_id, (*BUILT_IN_REMOVERS, store)).done
    # Then the store is asked only in the batches with room left: for the 28 rows the third
    # batch had left, and in the batch that finds nothing more
    assert store.limits == [BATCH - 22, BATCH]


class SimulatedCrash(RuntimeError):
    """The worker dies in the middle of a batch."""


class CrashOnSecondBatch:
    """Deletes member data like the built-in remover, but dies during its second batch,
    after deleting and before the commit."""

    name = "member-data"

    def __init__(self) -> None:
        self.batches = 0
        self._inner = TableRemover("member-data", MemberData)

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        self.batches += 1
        removed = self._inner.remove_batch(session, membership_id, limit)
        if self.batches == 2:
            raise SimulatedCrash("killed mid-batch")
        return removed

    def remaining(self, session: Session, membership_id: str) -> int:
        return self._inner.remaining(session, membership_id)


def test_data_removal_resumes_where_it_stopped_after_a_crash(world: World) -> None:
    # Given a purge-pending membership and a worker that dies during its second batch
    membership_id = _purge_pending(world)
    crashing = (BUILT_IN_REMOVERS[0], CrashOnSecondBatch())
    with world.uow() as uow:
        first = remove_data_batch(uow, world.clock, membership_id, crashing)
    assert first.removed_now == BATCH
    with world.uow() as uow, pytest.raises(SimulatedCrash):
        remove_data_batch(uow, world.clock, membership_id, crashing)
    # Then the first batch stays done and the interrupted one left nothing half-applied
    row = _row(world, membership_id)
    assert (row.state, row.removed_rows) == ("purge-pending", BATCH)
    assert _count(world, Grant, membership_id) == 0
    assert _count(world, MemberData, membership_id) == 120 - (BATCH - 2)
    # When a new worker picks the work up again
    with world.uow() as uow:
        done = remove_all_data(uow, world.clock, membership_id)
    # Then it finishes from where the first stopped, counting every row exactly once
    assert done.state == "purged"
    assert done.removed_total == 122
    assert _count(world, MemberData, membership_id) == 0


def test_removal_cannot_finish_while_data_remains(world: World) -> None:
    # Given a purge-pending membership that still has grants and data
    membership_id = _purge_pending(world)
    with world.uow() as uow:
        before = max(uow.session.scalars(select(AuditEvent.id)).all())
    # When a batch erases nothing (the rows cannot be deleted this time) and so tries to
    # finish, Then the finish is refused, audited, and nothing changed
    stuck = (UndeletableTable("grants", Grant), UndeletableTable("member-data", MemberData))
    with world.uow() as uow, pytest.raises(TransitionNotAllowed) as refused:
        remove_data_batch(uow, world.clock, membership_id, stuck)
    assert refused.value.extra["remaining"] == ["grants", "member-data"]
    assert refused.value.detail == "Data remains in: grants, member-data."
    row = _row(world, membership_id)
    assert (row.state, row.email) == ("purge-pending", "ann@mail.example")
    assert _count(world, MemberData, membership_id) == 120
    with world.uow() as uow:
        [denial] = uow.session.scalars(select(AuditEvent).where(AuditEvent.id > before)).all()
        assert (
            denial.actor,
            denial.action,
            denial.outcome,
            denial.reason,
            denial.organization_id,
            denial.membership_id,
            denial.from_state,
        ) == (
            "worker",
            "finish_removal",
            "denied",
            "transition-not-allowed",
            world.orgs["open"],
            membership_id,
            "purge-pending",
        )


def test_a_direct_connect_guest_is_purged_without_a_soft_deleted_period(world: World) -> None:
    # Given pat, a direct-connect guest of open with 30 data rows, who leaves
    membership_id = world.membership("open", "pat")
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("pat"), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, membership_id)
    # When data removal runs
    with world.uow() as uow:
        done = remove_all_data(uow, world.clock, membership_id)
    # Then pat is purged without ever being soft-deleted
    row = _row(world, membership_id)
    assert done.state == "purged"
    assert row.soft_deleted_at is None
    assert row.purged_at is not None and row.removal_due_by is not None
    assert row.purged_at <= row.removal_due_by


# --- nothing personal remains --------------------------------------------------------------

EMAIL = "quincy.zephyrton@mail.example"
NAME = "Quincy Zephyrton"
PERSONAL = (EMAIL, "quincy.zephyrton", NAME, "zephyrton")


def _strings_holding_personal_data(session: Session) -> list[str]:
    """Every string cell of every table that mentions the person, except their own account
    in ``users`` (the directory's record of the person, not an organization's data)."""
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name == "users":
            continue
        columns = [c for c in table.columns if isinstance(c.type, String | Text)]
        for row in session.execute(select(*columns)).all():
            for column, value in zip(columns, row, strict=True):
                if value and any(p in str(value).lower() for p in (x.lower() for x in PERSONAL)):
                    found.append(f"{table.name}.{column.name}={value!r}")
    return found


def test_after_a_purge_nothing_personal_remains(world: World) -> None:
    # Given a guest of open with a distinctive e-mail and name, grants, data and a history
    with world.uow() as uow:
        person = provisioning.create_user(uow, world.clock, SYSTEM, EMAIL, NAME)
    # (and an earlier invitation of open to the same address, revoked)
    with world.uow() as uow:
        invited = invitations.invite_guest(
            uow, world.clock, SYSTEM, "open.example", EMAIL, "b2b-collaboration"
        )
    with world.uow() as uow:
        invitations.revoke_invitation(uow, world.clock, SYSTEM, "open.example", invited.id)
    with world.uow() as uow:
        membership_id = provisioning.add_guest(
            uow, world.clock, SYSTEM, "open.example", EMAIL, "b2b-collaboration"
        ).id
    with world.uow() as uow:
        provisioning.add_grant(uow, world.clock, SYSTEM, "open.example", EMAIL, "group", "Ops")
    with world.uow() as uow:
        provisioning.add_member_data(uow, world.clock, SYSTEM, "open.example", EMAIL, 75)
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, Principal.user(person.id), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, membership_id)
    with world.uow() as uow:
        assert _strings_holding_personal_data(uow.session)  # the check can see it
    # When the retention period ends and data removal runs to the end
    world.clock.advance(RETENTION)
    with world.uow() as uow:
        automatic.expire_retention(uow, world.clock, membership_id)
    with world.uow() as uow:
        assert remove_all_data(uow, world.clock, membership_id).state == "purged"
    # Then no grants, no member data and no personal fields remain: a tombstone of ids,
    # states and timestamps, and an audit log of ids and codes
    tombstone = _row(world, membership_id)
    assert (tombstone.state, tombstone.email, tombstone.display_name) == ("purged", None, None)
    assert tombstone.purged_at == world.clock()
    assert _count(world, Grant, membership_id) == 0
    assert _count(world, MemberData, membership_id) == 0
    with world.uow() as uow:
        assert _strings_holding_personal_data(uow.session) == []
        trail = [
            (e.action, e.from_state, e.to_state)
            for e in uow.session.scalars(
                select(AuditEvent)
                .where(AuditEvent.membership_id == membership_id, AuditEvent.to_state.is_not(None))
                .order_by(AuditEvent.id)
            )
        ]
    assert trail == [
        ("add_guest", None, "active"),
        ("request_leave", "active", "leave-pending"),
        ("complete_leave", "leave-pending", "soft-deleted"),
        ("expire_retention", "soft-deleted", "purge-pending"),
        ("finish_removal", "purge-pending", "purged"),
    ]
    # And nothing the organization reads about the membership shows the person
    gadmin = world.principal("gadmin")
    with world.uow() as uow:
        # (the person is no longer a way in: their e-mail leads to no tombstone)
        with pytest.raises(NotFound):
            reading.show_membership(uow, world.clock, gadmin, "open.example", EMAIL)
        one = reading.get_membership(uow, world.clock, gadmin, "open.example", membership_id)
        history = reading.membership_history(
            uow, world.clock, gadmin, "open.example", membership_id
        )
        listed = reading.list_memberships(uow, world.clock, gadmin, "open.example", limit=200)
        audit = reading.list_audit_events(uow, world.clock, gadmin, "open.example", limit=200)
    assert one.state == "purged" and one.grants == ()
    for view in (one, history, listed, audit):
        text = json.dumps(view, default=_jsonable).lower()
        assert membership_id in text  # the view does cover the purged membership
        for personal in PERSONAL:
            assert personal.lower() not in text


def _jsonable(value: object) -> object:
    if hasattr(value, "__dataclass_fields__"):
        return to_dict(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()  # type: ignore[attr-defined]
    raise TypeError(type(value).__name__)


def test_a_purged_guest_can_be_invited_again(world: World) -> None:
    # Given ann's membership in open was purged
    membership_id = _purge_pending(world)
    with world.uow() as uow:
        remove_all_data(uow, world.clock, membership_id)
    # When open invites her again
    with world.uow() as uow:
        again = provisioning.add_guest(
            uow, world.clock, SYSTEM, "open.example", "ann@mail.example", "b2b-collaboration"
        )
    # Then a new, active membership exists beside the tombstone, with nothing carried over
    assert again.id != membership_id
    assert again.state == "active"
    assert _count(world, Grant, again.id) == 0
    assert _row(world, membership_id).state == "purged"


# --- many memberships at once (the remove_data_many message) -------------------------------


def _pat_purge_pending(world: World) -> str:
    # pat is a direct-connect guest: removing him starts data removal at once
    membership_id = world.membership("open", "pat")
    with world.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, world.orgs["open"], membership_id)
    return membership_id


def _chunk_until_done(
    world: World, ids: list[str], removers: tuple[Remover, ...] = BUILT_IN_REMOVERS
) -> list[ChunkProgress]:
    seen = []
    for _ in range(100):
        world.clock.advance(timedelta(seconds=1))
        with world.uow() as uow:
            progress = remove_chunk_batch(uow, world.clock, ids, removers)
        seen.append(progress)
        if progress.done:
            return seen
    raise AssertionError("the chunk never finished")


def _finishes(world: World, membership_id: str) -> list[tuple[str, str, str | None]]:
    with world.uow() as uow:
        return [
            (e.actor, e.outcome, e.to_state)
            for e in uow.session.scalars(
                select(AuditEvent).where(
                    AuditEvent.membership_id == membership_id,
                    AuditEvent.action == "finish_removal",
                )
            )
        ]


def test_a_chunk_is_erased_in_bounded_batches_and_each_membership_purged_once(
    world: World,
) -> None:
    # Given ann (2 grants, 120 data rows) and pat (30 data rows) purge-pending, and in the
    # same chunk memberships that are not: ann soft-deleted in closed, ann active in bare
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    soft_deleted = world.soft_delete("closed")
    active = world.membership("bare", "ann")
    # (and data of a membership outside the chunk: ann's 5 rows in bare, which must neither
    # be erased nor keep the chunk from finishing)
    with world.uow() as uow:
        provisioning.add_member_data(
            uow, world.clock, SYSTEM, world.orgs["bare"], world.users["ann"], 5
        )
    others = {m: (_row(world, m).state, _row(world, m).version) for m in (soft_deleted, active)}
    # When a worker runs the chunk batch by batch (50 rows per transaction)
    seen = _chunk_until_done(world, [ann, pat, soft_deleted, active])
    # Then every batch was bounded, and only the purge-pending memberships were worked on
    assert [p.removed_now for p in seen] == [50, 50, 50, 2]
    assert {m for p in seen for m in p.worked_on} == {ann, pat}
    assert sorted(seen[-1].purged) == sorted([ann, pat])
    # And both are tombstones with every row counted once and nothing personal left
    for membership_id, rows in ((ann, 122), (pat, 30)):
        row = _row(world, membership_id)
        assert (row.state, row.removed_rows, row.email, row.display_name) == (
            "purged",
            rows,
            None,
            None,
        )
        assert row.purged_at == world.clock()
        assert _count(world, Grant, membership_id) == 0
        assert _count(world, MemberData, membership_id) == 0
        assert _finishes(world, membership_id) == [("worker", "allowed", "purged")]
    # And the others were left exactly as they were, their data too
    assert {m: (_row(world, m).state, _row(world, m).version) for m in others} == others
    assert _count(world, MemberData, active) == 5


def test_progress_is_recorded_per_membership_after_each_chunk_batch(world: World) -> None:
    # Given ann and pat purge-pending
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    # When one batch of 50 rows runs over both
    at = world.clock.advance(timedelta(seconds=1))
    with world.uow() as uow:
        first = remove_chunk_batch(uow, world.clock, [ann, pat])
    # Then the rows it deleted are on the memberships that had them, with the time
    assert (first.removed_now, first.purged, first.done) == (50, (), False)
    rows = {m: _row(world, m) for m in (ann, pat)}
    assert sum(r.removed_rows for r in rows.values()) == 50
    assert all(r.state == "purge-pending" for r in rows.values())
    for membership_id, row in rows.items():
        if row.removed_rows:
            assert row.last_progress_at == at
        left = _count(world, Grant, membership_id) + _count(world, MemberData, membership_id)
        assert left == {ann: 122, pat: 30}[membership_id] - row.removed_rows


def test_a_chunk_delivered_twice_does_nothing_the_second_time(world: World) -> None:
    # Given a chunk whose data removal ran to the end
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    _chunk_until_done(world, [ann, pat])
    with world.uow() as uow:
        events = len(uow.session.scalars(select(AuditEvent.id)).all())
    before = {m: _row(world, m).version for m in (ann, pat)}
    # When the same message is delivered again (a retry, or re-driven by the sweep)
    with world.uow() as uow:
        again = remove_chunk_batch(uow, world.clock, [ann, pat])
    # Then nothing is worked on, nothing audited, nothing changed
    assert (again.worked_on, again.removed_now, again.done) == ((), 0, True)
    with world.uow() as uow:
        assert len(uow.session.scalars(select(AuditEvent.id)).all()) == events
    assert {m: _row(world, m).version for m in (ann, pat)} == before


class ReportsDataFor:
    """A deployment's store that reports data it cannot delete for one membership."""

    name = "stuck-store"

    def __init__(self, membership_id: str) -> None:
        self.membership_id = membership_id

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        return 0

    def remaining(self, session: Session, membership_id: str) -> int:
        return 1 if membership_id == self.membership_id else 0


def test_a_remover_that_still_reports_data_blocks_only_its_memberships_finish(
    world: World,
) -> None:
    # Given ann and pat purge-pending, and a store that keeps reporting data for pat
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    removers = (*BUILT_IN_REMOVERS, ReportsDataFor(pat))
    # When the chunk is removed until a batch finds it drained
    with pytest.raises(TransitionNotAllowed) as refused:
        _chunk_until_done(world, [ann, pat], removers)
    # Then ann is purged, pat is not: his finish is refused, audited, and named in the error
    assert refused.value.extra["membership_ids"] == [pat]
    assert refused.value.extra["remaining"] == ["stuck-store"]
    assert refused.value.detail == "Data remains in: stuck-store (1 memberships)."
    assert _row(world, ann).state == "purged"
    row = _row(world, pat)
    assert (row.state, row.email, row.removed_rows) == ("purge-pending", "pat@mail.example", 30)
    assert _finishes(world, pat) == [("worker", "denied", None)]
    with world.uow() as uow:
        denial = uow.session.scalar(
            select(AuditEvent).where(
                AuditEvent.membership_id == pat, AuditEvent.outcome == "denied"
            )
        )
        assert denial is not None
        # (every field of the denied entry: on the membership's organization, by the worker)
        assert (
            denial.organization_id,
            denial.actor,
            denial.action,
            denial.from_state,
            denial.to_state,
            denial.reason,
            denial.occurred_at,
        ) == (
            world.orgs["open"],
            "worker",
            "finish_removal",
            "purge-pending",
            None,
            "transition-not-allowed",
            world.clock(),
        )
    # And once the store lets go, the next delivery finishes him
    assert _chunk_until_done(world, [ann, pat])[-1].purged == (pat,)


class PerMembershipRemover:
    """Deletes member data with only the per-membership methods (the chunk path must fall
    back to them); while ``crash`` is set it dies after deleting, before the commit."""

    name = "member-data"

    def __init__(self) -> None:
        self.crash = False
        self._inner = TableRemover("member-data", MemberData)

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        removed = self._inner.remove_batch(session, membership_id, limit)
        if self.crash:
            raise SimulatedCrash("killed mid-batch")
        return removed

    def remaining(self, session: Session, membership_id: str) -> int:
        return self._inner.remaining(session, membership_id)


def test_a_chunk_resumes_after_a_crash_and_falls_back_to_per_membership_removers(
    world: World,
) -> None:
    # Given ann and pat purge-pending, and a member-data remover without the chunk methods
    # that dies during the second batch, after deleting and before the commit
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    crashing = PerMembershipRemover()
    assert not hasattr(crashing, "remove_many")
    removers = (BUILT_IN_REMOVERS[0], crashing)
    with world.uow() as uow:
        first = remove_chunk_batch(uow, world.clock, [ann, pat], removers)
    assert first.removed_now == BATCH
    crashing.crash = True
    with world.uow() as uow, pytest.raises(SimulatedCrash):
        remove_chunk_batch(uow, world.clock, [ann, pat], removers)
    crashing.crash = False
    # Then the first batch stays committed and the interrupted one left nothing behind
    assert sum(_row(world, m).removed_rows for m in (ann, pat)) == BATCH
    assert all(_row(world, m).state == "purge-pending" for m in (ann, pat))
    # When the chunk is picked up again, Then it finishes, counting every row exactly once
    _chunk_until_done(world, [ann, pat], removers)
    assert [_row(world, m).removed_rows for m in (ann, pat)] == [122, 30]
    assert [_row(world, m).state for m in (ann, pat)] == ["purged", "purged"]


def test_a_chunk_batch_through_a_per_membership_remover_uses_its_whole_limit(
    world: World, session_factory: Any
) -> None:
    # Given pat (30 data rows) and ann in bare (30 data rows) purge-pending, a member-data
    # remover without the chunk methods, and batches of 31 rows
    pat = _pat_purge_pending(world)
    with world.uow() as uow:
        provisioning.add_member_data(
            uow, world.clock, SYSTEM, world.orgs["bare"], world.users["ann"], 30
        )
    bare = world.soft_delete("bare")
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("bareadmin"), "bare.example", bare)
    # When one batch runs over both
    with UnitOfWork(session_factory, None, Policy(removal_batch_size=31)) as uow:
        progress = remove_chunk_batch(uow, world.clock, [pat, bare], (PerMembershipRemover(),))
    # Then it erased 31 rows, all of the first membership's and one of the other's, and
    # finished neither
    assert (progress.removed_now, progress.purged) == (31, ())
    assert sorted(_count(world, MemberData, m) for m in (pat, bare)) == [0, 29]


def test_the_chunk_finish_stores_what_the_per_membership_finish_stores(world: World) -> None:
    # Given two collaboration guests purge-pending: ann in open, and ann in closed
    by_row = _purge_pending(world)
    by_chunk = world.soft_delete("closed")
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("cadmin"), "closed.example", by_chunk)
    # When one is finished by the per-membership path and the other by the chunk path
    world.clock.advance(timedelta(minutes=1))
    with world.uow() as uow:
        remove_all_data(uow, world.clock, by_row)
    _chunk_until_done(world, [by_chunk])

    # Then both tombstones and their audit rows hold the same things
    def shape(membership_id: str) -> tuple[object, ...]:
        row = _row(world, membership_id)
        with world.uow() as uow:
            event = uow.session.scalar(
                select(AuditEvent).where(
                    AuditEvent.membership_id == membership_id,
                    AuditEvent.action == "finish_removal",
                )
            )
            assert event is not None
            audited = (event.actor, event.outcome, event.from_state, event.to_state, event.reason)
        return (row.state, row.version, row.email, row.display_name, row.last_error, audited)

    assert shape(by_row) == shape(by_chunk)
    assert _row(world, by_row).purged_at is not None
    assert _row(world, by_chunk).purged_at == world.clock()


def test_the_batch_that_finishes_a_chunk_records_its_last_rows_on_the_tombstone(
    world: World,
) -> None:
    # Given ann purge-pending with 122 rows (2 grants, 120 data rows)
    ann = _purge_pending(world)
    # When a worker runs her chunk batch by batch: the last batch erases 22 rows and finishes
    seen = _chunk_until_done(world, [ann])
    assert [(p.removed_now, p.purged) for p in seen] == [(50, ()), (50, ()), (22, (ann,))]
    # Then her tombstone counts all 122 and shows the finishing batch as her last progress
    row = _row(world, ann)
    assert (row.state, row.removed_rows) == ("purged", 122)
    assert row.last_progress_at == world.clock()
    assert row.purged_at == world.clock()


def test_a_batch_records_progress_on_its_own_membership_only(world: World) -> None:
    # Given ann and pat both purge-pending
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    pat_before = (_row(world, pat).removed_rows, _row(world, pat).last_progress_at)
    # When one batch erases ann's rows
    at = world.clock.advance(timedelta(seconds=1))
    with world.uow() as uow:
        progress = remove_data_batch(uow, world.clock, ann)
    # Then her progress is recorded, and pat's is as it was
    assert progress.removed_now == BATCH
    assert (_row(world, ann).removed_rows, _row(world, ann).last_progress_at) == (BATCH, at)
    assert (_row(world, pat).removed_rows, _row(world, pat).last_progress_at) == pat_before


@dataclass(frozen=True)
class UndeletableTable(TableRemover):
    """One of this service's tables whose rows cannot be deleted this time (a lock, a
    trigger): they stay, and the table's own check reports them."""

    def remove_many(
        self, session: Session, membership_ids: Sequence[str], limit: int
    ) -> Mapping[str, int]:
        return {}

    def remove_batch(self, session: Session, membership_id: str, limit: int) -> int:
        return 0


def test_rows_left_in_a_table_block_the_finish_of_exactly_the_memberships_that_have_them(
    world: World, session_factory: Any, policy: Any
) -> None:
    # Given ann (2 grants, 120 data rows) and pat (30 data rows) purge-pending, ann's 5 data
    # rows in bare outside the chunk, and member data that cannot be deleted this time
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    with world.uow() as uow:
        provisioning.add_member_data(
            uow, world.clock, SYSTEM, world.orgs["bare"], world.users["ann"], 5
        )
    removers = (TableRemover("grants", Grant), UndeletableTable("member-data", MemberData))
    # When a batch over the chunk runs for request "tick-42"
    world.clock.advance(timedelta(seconds=1))
    with (
        UnitOfWork(session_factory, None, policy, request_id="tick-42") as uow,
        pytest.raises(TransitionNotAllowed) as refused,
    ):
        remove_chunk_batch(uow, world.clock, [ann, pat], removers)
    # Then neither is finished, and the refusal names exactly the two and the table
    assert refused.value.extra["membership_ids"] == sorted([ann, pat])
    assert refused.value.extra["remaining"] == ["member-data"]
    assert [_row(world, m).state for m in (ann, pat)] == ["purge-pending"] * 2
    assert _count(world, Grant, ann) == 0
    # And each has one denied finish in the audit log, for that request
    with world.uow() as uow:
        denials = uow.session.execute(
            select(AuditEvent.membership_id, AuditEvent.request_id).where(
                AuditEvent.action == "finish_removal", AuditEvent.outcome == "denied"
            )
        ).all()
    assert sorted(denials) == sorted([(ann, "tick-42"), (pat, "tick-42")])


def test_a_chunk_batch_fills_up_to_its_last_row_and_asks_no_remover_once_full(
    world: World,
) -> None:
    # Given ann (2 grants, 120 data rows) and pat (30 data rows) purge-pending, a
    # deployment's store erased first, holding 49 records of pat's, and one erased last
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    first, last = AppStore({pat: 49}, "first-store"), AppStore(name="last-store")
    # When the chunk is removed to the end, 50 rows a batch
    seen = _chunk_until_done(world, [ann, pat], (first, *BUILT_IN_REMOVERS, last))
    # Then the first batch takes the first store's 49 and one more row, and a store is asked
    # only while a batch has room: never for nothing
    assert [p.removed_now for p in seen] == [50, 50, 50, 50, 1]
    assert last.limits == [49, 49]
    assert sorted(seen[-1].purged) == sorted([ann, pat])
    assert [_row(world, m).removed_rows for m in (ann, pat)] == [122, 79]


def test_a_refused_chunk_finish_names_every_table_that_keeps_rows(world: World) -> None:
    # Given ann (grants and data) and pat (data) purge-pending, and tables whose rows cannot
    # be deleted this time
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    removers = (UndeletableTable("grants", Grant), UndeletableTable("member-data", MemberData))
    # When a batch over the chunk finds nothing it can erase
    with world.uow() as uow, pytest.raises(TransitionNotAllowed) as refused:
        remove_chunk_batch(uow, world.clock, [ann, pat], removers)
    # Then the refusal names both tables, and how many memberships they hold up
    assert refused.value.detail == "Data remains in: grants, member-data (2 memberships)."


def test_a_removal_shows_the_rows_left_of_its_own_membership_in_every_table(
    world: World,
) -> None:
    # Given ann (2 grants, 120 data rows) and pat (30 data rows) purge-pending in open
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    gadmin = world.principal("gadmin")

    def removal(membership_id: str) -> tuple[int, int] | None:
        with world.uow() as uow:
            view = reading.get_membership(uow, world.clock, gadmin, "open.example", membership_id)
        return (
            None if view.removal is None else (view.removal.rows_removed, view.removal.rows_total)
        )

    # Then before any batch each counts its own rows in both tables, none of the other's
    assert (removal(ann), removal(pat)) == ((0, 122), (0, 30))
    # And after one batch of 50 (ann's 2 grants and 48 data rows) the total stays
    with world.uow() as uow:
        remove_data_batch(uow, world.clock, ann)
    assert (removal(ann), removal(pat)) == ((50, 122), (0, 30))
    # And a membership whose removal has not started shows none
    assert removal(world.membership("open", "off")) is None


# --- what else a purge forgets -------------------------------------------------------------


def _invitation(
    world: World,
    org: str,
    email: str,
    status: str,
    expires_at: datetime,
    membership_id: str | None = None,
) -> str:
    invitation_id = str(uuid.uuid4())
    with world.uow() as uow:
        uow.session.add(
            Invitation(
                id=invitation_id,
                organization_id=world.orgs[org],
                email=email,
                email_key=email.strip().lower(),
                kind="b2b-collaboration",
                status=status,
                invited_by=world.users["gadmin"],
                created_at=world.clock() - timedelta(days=1),
                expires_at=expires_at,
                membership_id=membership_id,
            )
        )
        uow.commit()
    return invitation_id


@pytest.mark.parametrize("chunked", [False, True], ids=["one-by-one", "chunk"])
def test_a_purge_forgets_the_persons_answered_invitations_there_and_their_last_address(
    world: World, session_factory: Any, chunked: bool
) -> None:
    # Given ann (a guest of closed and bare too, home at home) and pat (a guest of open
    # only) purge-pending in open, the invitations to them, and quinn, who has an account
    # and no membership yet
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    with world.uow() as uow:
        quinn = provisioning.create_user(uow, world.clock, SYSTEM, "quinn@mail.example", "Quinn")
    now = world.clock()
    invitation = functools.partial(_invitation, world)
    gone = {
        # the accepted one that made pat's membership (sent to an address he no longer has)
        invitation("open", "pat.before@mail.example", "accepted", now, membership_id=pat),
        # open's answered invitations to his address, in any case of its letters
        invitation("open", " PAT@mail.example", "declined", now + timedelta(days=1)),
        invitation("open", "pat@mail.example", "revoked", now + timedelta(days=1)),
        # and one left pending until exactly the purge: expired
        invitation("open", "pat@mail.example", "pending", now),
        invitation("open", "ann@mail.example", "declined", now + timedelta(days=1)),
    }
    kept = {
        # a pending invitation still open to answer
        invitation("open", "pat@mail.example", "pending", now + timedelta(seconds=1)),
        # another organization's, and another person's
        invitation("closed", "pat@mail.example", "declined", now + timedelta(days=1)),
        invitation("open", "dis@mail.example", "declined", now + timedelta(days=1)),
    }
    # When both are purged, one by one or as one chunk, at ``now``
    if chunked:
        policy = Policy(removal_batch_size=1000)
        with UnitOfWork(session_factory, None, policy) as uow:
            assert sorted(remove_chunk_batch(uow, world.clock, [ann, pat]).purged) == sorted(
                [ann, pat]
            )
    else:
        for membership_id in (ann, pat):
            with world.uow() as uow:
                assert remove_all_data(uow, world.clock, membership_id).state == "purged"
    assert world.clock() == now
    # Then exactly the answered or expired invitations to them in open are gone
    with world.uow() as uow:
        left = set(uow.session.scalars(select(Invitation.id)))
    assert left & (gone | kept) == kept
    # And pat, a member nowhere now, keeps no e-mail and no name; ann, still a member
    # elsewhere, keeps both, and so does quinn, whom no purge concerned
    with world.uow() as uow:
        accounts = {
            user_id: (user.email, user.display_name)
            for user_id in (world.users["ann"], world.users["pat"], quinn.id)
            if (user := uow.session.get(User, user_id)) is not None
        }
    assert accounts == {
        world.users["ann"]: ("ann@mail.example", "Ann"),
        world.users["pat"]: (None, None),
        quinn.id: ("quinn@mail.example", "Quinn"),
    }


# --- failures of the background work, kept on the membership -------------------------------


def _failure_fields(world: World, *membership_ids: str) -> list[tuple[str, int, str | None]]:
    return [
        (_row(world, m).state, _row(world, m).attempts, _row(world, m).last_error)
        for m in membership_ids
    ]


def test_a_failure_is_counted_on_its_own_membership_and_never_on_a_tombstone(
    world: World,
) -> None:
    # Given pat purge-pending, ann active in open, and ann's membership of bare purged
    pat, active = _pat_purge_pending(world), world.membership("open", "ann")
    purged = world.soft_delete("bare")
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("bareadmin"), "bare.example", purged)
    with world.uow() as uow:
        assert remove_all_data(uow, world.clock, purged).state == "purged"
    # When a worker fails on pat twice, Then each failure is counted and the last error kept
    with world.uow() as uow:
        assert failures.record_failure(uow, pat, "ConnectionError: first") == 1
    with world.uow() as uow:
        assert failures.record_failure(uow, pat, "ConnectionError: second") == 2
    assert _failure_fields(world, pat, active) == [
        ("purge-pending", 2, "ConnectionError: second"),
        ("active", 0, None),
    ]
    # And a failure on the tombstone, or on no membership, is not recorded
    with world.uow() as uow:
        assert failures.record_failure(uow, purged, "ConnectionError: late") is None
    with world.uow() as uow:
        assert failures.record_failure(uow, str(uuid.uuid4()), "ConnectionError: none") is None
    assert _failure_fields(world, purged) == [("purged", 0, None)]


def test_a_chunk_s_failure_is_counted_on_its_purge_pending_memberships_only(world: World) -> None:
    # Given ann and pat purge-pending in open, ann purge-pending in closed (another chunk's),
    # and ann active in bare
    ann, pat = _purge_pending(world), _pat_purge_pending(world)
    elsewhere = world.soft_delete("closed")
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("cadmin"), "closed.example", elsewhere)
    active = world.membership("bare", "ann")
    # When a chunk of ann, pat and the active one fails, Then the two purge-pending ones count it
    with world.uow() as uow:
        assert message_handlers.record_chunk_failure(uow, [ann, pat, active], "Boom: x") == 2
    assert _failure_fields(world, ann, pat, elsewhere, active) == [
        ("purge-pending", 1, "Boom: x"),
        ("purge-pending", 1, "Boom: x"),
        ("purge-pending", 0, None),
        ("active", 0, None),
    ]
    # And a chunk with none of them purge-pending records nothing
    with world.uow() as uow:
        assert message_handlers.record_chunk_failure(uow, [active], "Boom: y") == 0
    # And what the chunk still has to do is ann and pat (read without a lock)
    with world.uow() as uow:
        assert sorted(message_handlers.held_elsewhere(uow, [ann, pat, active])) == sorted(
            [ann, pat]
        )


def test_a_message_locks_its_own_membership_and_finds_none_for_an_unknown_id(
    world: World,
) -> None:
    # Given ann's membership of open, When a message takes its lock, Then it is found
    with world.uow() as uow:
        assert message_handlers.lock_membership(uow, world.membership("open", "ann"))
    # And a message for a membership that does not exist finds nothing to lock
    with world.uow() as uow:
        assert not message_handlers.lock_membership(uow, str(uuid.uuid4()))
