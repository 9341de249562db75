"""DESIGN.md §1, what happens by itself: the end of the retention period, staged data
removal in bounded batches, and the tombstone that is all a purge leaves."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import String, Text, func, select
from sqlalchemy.orm import Session

from memberships import admin, provisioning, reading, self_service, timers
from memberships.errors import TransitionNotAllowed
from memberships.principal import SYSTEM, Principal
from memberships.removal import (
    BUILT_IN_REMOVERS,
    TableRemover,
    finish_removal,
    remove_all_data,
    remove_data_batch,
)
from memberships.views import to_dict
from store.models import AuditEvent, Base, Grant, MemberData, Membership

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


def _soft_delete(world: World, org: str = "open", user: str = "ann") -> str:
    membership_id = world.membership(org, user)
    with world.uow() as uow:
        admin.remove(uow, world.clock, SYSTEM, world.orgs[org], membership_id)
    return membership_id


def _purge_pending(world: World) -> str:
    membership_id = _soft_delete(world)
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    return membership_id


# --- the end of the retention period -------------------------------------------------------


def test_retention_expires_only_when_the_purge_is_due(world: World, dispatcher: object) -> None:
    # Given ann's membership in open, soft-deleted now
    membership_id = _soft_delete(world)
    due = _row(world, membership_id).purge_due_at
    assert due == world.clock() + RETENTION
    # When the timer fires a second early, Then nothing happens
    world.clock.advance(RETENTION - timedelta(seconds=1))
    with world.uow() as uow:
        assert timers.expire_retention(uow, world.clock, membership_id) is None
    assert _row(world, membership_id).state == "soft-deleted"
    # When it fires at the due time
    world.clock.advance(timedelta(seconds=1))
    with world.uow() as uow:
        expired = timers.expire_retention(uow, world.clock, membership_id)
    # Then permanent deletion starts by itself, due within the data-removal window
    assert expired is not None
    assert expired.state == "purge-pending"
    assert expired.purge_started_at == due
    assert expired.removal_due_by == due + REMOVAL_WINDOW
    assert ("remove_data", membership_id) in dispatcher.sent  # type: ignore[attr-defined]
    # And a second firing changes nothing
    version = _row(world, membership_id).version
    with world.uow() as uow:
        assert timers.expire_retention(uow, world.clock, membership_id) is None
    assert _row(world, membership_id).version == version


@pytest.mark.parametrize("state", ["active", "restored"])
def test_retention_never_expires_for_a_membership_in_use(world: World, state: str) -> None:
    # Given an active membership, or one that was restored before its purge was due
    membership_id = world.membership("open", "ann")
    if state == "restored":
        _soft_delete(world)
        with world.uow() as uow:
            admin.restore(uow, world.clock, SYSTEM, "open.example", membership_id)
    # When the timer fires long after the old due time, Then nothing happens
    world.clock.advance(RETENTION * 3)
    with world.uow() as uow:
        assert timers.expire_retention(uow, world.clock, membership_id) is None
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
    assert (late.done, late.removed_now, late.state) == (True, 0, "purged")


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
    # When finishing is attempted, Then it is refused, audited, and nothing changed
    with world.uow() as uow, pytest.raises(TransitionNotAllowed) as refused:
        finish_removal(uow, world.clock, membership_id)
    assert refused.value.extra["remaining"] == ["grants", "member-data"]
    row = _row(world, membership_id)
    assert (row.state, row.email) == ("purge-pending", "ann@mail.example")
    assert _count(world, MemberData, membership_id) == 120
    with world.uow() as uow:
        [denial] = uow.session.scalars(select(AuditEvent).where(AuditEvent.id > before)).all()
        assert (denial.action, denial.outcome, denial.reason, denial.membership_id) == (
            "finish_removal",
            "denied",
            "transition-not-allowed",
            membership_id,
        )


def test_a_direct_connect_guest_is_purged_without_a_soft_deleted_period(world: World) -> None:
    # Given pat, a direct-connect guest of open with 30 data rows, who leaves
    membership_id = world.membership("open", "pat")
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("pat"), "open.example")
    with world.uow() as uow:
        timers.complete_leave(uow, world.clock, membership_id)
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
        timers.complete_leave(uow, world.clock, membership_id)
    with world.uow() as uow:
        assert _strings_holding_personal_data(uow.session)  # the check can see it
    # When the retention period ends and data removal runs to the end
    world.clock.advance(RETENTION)
    with world.uow() as uow:
        timers.expire_retention(uow, world.clock, membership_id)
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
        shown = reading.show_membership(uow, world.clock, gadmin, "open.example", EMAIL)
        one = reading.get_membership(uow, world.clock, gadmin, "open.example", membership_id)
        history = reading.membership_history(
            uow, world.clock, gadmin, "open.example", membership_id
        )
        listed = reading.list_memberships(uow, world.clock, gadmin, "open.example", limit=200)
        audit = reading.list_audit_events(uow, world.clock, gadmin, "open.example", limit=200)
    assert shown["membership"].state == "purged"
    assert shown["membership"].grants == () and shown["member_data_rows"] == 0
    for view in (shown, one, history, listed, audit):
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
