"""The lifecycle use cases (``memberships.self_service``, ``admin``, ``automatic`` and the
decisions they share) on the in-memory unit of work of ``tests/unit/fakes.py``: the rules
of docs/domain.md ("Leaving", "Removal", "Restore", "Permanent delete"), without a
database. The same rules run on SQLite and PostgreSQL in ``tests/integration``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from memberships import admin, automatic, decisions, self_service
from memberships.errors import (
    AccountDisabled,
    Conflict,
    Forbidden,
    HomeOrganization,
    LeaveDisabled,
    NotFound,
    PreconditionFailed,
    RestoreWindowClosed,
    TransitionNotAllowed,
)
from memberships.principal import Principal
from statemachines.membership import MembershipKind
from store.models import Membership, Organization, User
from store.policy import Policy
from store.unit_of_work import RecordingDispatcher
from tests.unit.fakes import FakeDatabase, FakeUnitOfWork, audit_entries, copy_of, values_of

START = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
POLICY = Policy()


@dataclass
class World:
    """``open`` (leave allowed), ``closed`` (leave disallowed) and ``home``; ``ann`` (home:
    home; a B2B collaboration guest of open and closed), ``pat`` (home: home; a B2B direct
    connect guest of open) and ``gadmin`` (global administrator of open and closed)."""

    db: FakeDatabase
    now: datetime
    home: Organization
    open: Organization
    closed: Organization
    ann: User
    pat: User
    gadmin: User
    ann_open: Membership
    ann_closed: Membership
    pat_open: Membership

    def clock(self) -> datetime:
        return self.now

    def uow(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.db, policy=POLICY)

    def home_membership(self, user: User) -> Membership:
        found = [
            m
            for m in self.db.memberships.values()
            if m.user_id == user.id and m.kind == MembershipKind.HOME
        ]
        assert len(found) == 1
        return found[0]


@pytest.fixture
def world() -> World:
    db = FakeDatabase()
    home = db.add_organization("home.example", created_at=START)
    open_ = db.add_organization("open.example", leave_allowed=True, created_at=START)
    closed = db.add_organization("closed.example", leave_allowed=False, created_at=START)
    ann = db.add_user("ann", home, created_at=START)
    pat = db.add_user("pat", home, created_at=START)
    gadmin = db.add_user("gadmin", home, created_at=START)
    for org in (open_, closed):
        db.add_role(gadmin, org, "global-administrator", created_at=START)
    collaboration = MembershipKind.B2B_COLLABORATION
    ann_open = db.add_membership(ann, open_, collaboration, created_at=START)
    ann_closed = db.add_membership(ann, closed, collaboration, created_at=START)
    pat_open = db.add_membership(pat, open_, MembershipKind.B2B_DIRECT_CONNECT, created_at=START)
    db.add_grant(ann_open, "payroll", granted_at=START)
    return World(db, START, home, open_, closed, ann, pat, gadmin, ann_open, ann_closed, pat_open)


def me(user: User) -> Principal:
    return Principal.user(user.id)


class SendsOnlyAfterCommit(RecordingDispatcher):
    """Records, with each message, whether its unit of work had committed when it was sent."""

    def __init__(self, uow: FakeUnitOfWork) -> None:
        super().__init__()
        self.uow = uow
        self.committed_when_sent: list[bool] = []

    def send(self, actor_name: str, membership_id: str, request_id: str | None = None) -> None:
        self.committed_when_sent.append(self.uow.committed)
        super().send(actor_name, membership_id, request_id)


# --- leaving ------------------------------------------------------------------------------


def test_a_guest_leaves_an_organization_that_allows_it(world: World) -> None:
    # Given ann, a collaboration guest of open, which lets guests leave
    membership = world.ann_open
    uow = world.uow()
    uow.dispatcher = dispatcher = SendsOnlyAfterCommit(uow)
    # When she leaves it
    with uow:
        view = self_service.request_leave(uow, world.clock, me(world.ann), "open.example")
    # Then the membership is leave-pending, one version on, with the leave's entry fields
    assert (view.state, view.version) == ("leave-pending", 2)
    stored = world.db.memberships[membership.id]
    assert (stored.state, stored.version) == ("leave-pending", 2)
    assert stored.leave_requested_at == world.now
    # And the decision is audited, ann named by the membership's pseudonym
    [entry] = world.db.audit
    assert (entry.action, entry.outcome, entry.from_state, entry.to_state) == (
        "request_leave",
        "allowed",
        "active",
        "leave-pending",
    )
    assert entry.actor == membership.pseudonym
    assert entry.request_id == "request-1"
    # And the leave is handed to a worker once, after the commit
    assert uow.committed
    assert dispatcher.sent == [("complete_leave", membership.id)]
    assert dispatcher.committed_when_sent == [True]


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("organization disallows leaving", LeaveDisabled),
        ("account disabled", AccountDisabled),
        ("membership disabled", AccountDisabled),
        ("home organization", HomeOrganization),
    ],
)
def test_a_leave_is_refused_and_the_refusal_audited(
    world: World, case: str, error: type[Exception]
) -> None:
    # Given a membership ann may not leave on her own
    org_ref = "open.example"
    membership = world.ann_open
    if case == "organization disallows leaving":
        org_ref, membership = "closed.example", world.ann_closed
    elif case == "account disabled":
        world.ann.enabled = False
    elif case == "membership disabled":
        membership.enabled = False
    elif case == "home organization":
        org_ref, membership = "home.example", world.home_membership(world.ann)
    before = values_of(membership)
    uow = world.uow()
    # When she tries to leave
    with uow, pytest.raises(error) as refused:
        self_service.request_leave(uow, world.clock, me(world.ann), org_ref)
    # Then the membership is as it was, and nothing is sent
    assert values_of(world.db.memberships[membership.id]) == before
    assert uow.dispatcher.sent == []
    # And the refusal is audited (and committed), with the refusal's code
    assert audit_entries(world.db, membership) == [
        ("request_leave", "denied", refused.value.code)  # type: ignore[attr-defined]
    ]
    assert uow.committed and uow.denials == 1
    # (ann is named by the membership she tried to leave, her home membership too; the
    # refusal carries the request's id)
    assert world.db.audit[-1].actor == membership.pseudonym
    assert world.db.audit[-1].request_id == uow.request_id is not None


def test_a_leave_of_an_organization_the_member_is_not_in_is_not_found(world: World) -> None:
    # Given pat, who is no guest of closed
    uow = world.uow()
    # When he tries to leave it, Then it is not found, and nothing is written
    with uow, pytest.raises(NotFound):
        self_service.request_leave(uow, world.clock, me(world.pat), "closed.example")
    assert world.db.audit == []


# --- an admin's removal -------------------------------------------------------------------


def test_an_admin_removes_a_collaboration_guest_into_the_retention_period(world: World) -> None:
    # Given ann's collaboration membership of open
    membership = world.ann_open
    uow = world.uow()
    # When open's admin removes it
    with uow:
        view = admin.remove(uow, world.clock, me(world.gadmin), "open.example", membership.id)
    # Then it is soft-deleted, restorable until the retention period ends
    assert (view.state, view.version) == ("soft-deleted", 2)
    stored = world.db.memberships[membership.id]
    assert stored.soft_deleted_at == world.now
    assert stored.purge_due_at == world.now + POLICY.retention_period
    # And the admin is audited by their own id; no work is sent (the sweep purges later)
    [entry] = world.db.audit
    assert (entry.actor, entry.action, entry.to_state) == (world.gadmin.id, "remove", view.state)
    assert uow.dispatcher.sent == []


def test_an_admin_removes_a_direct_connect_guest_into_data_removal_at_once(
    world: World,
) -> None:
    # Given pat's direct connect membership of open
    membership = world.pat_open
    uow = world.uow()
    # When open's admin removes it
    with uow:
        view = admin.remove(uow, world.clock, me(world.gadmin), "open.example", membership.id)
    # Then its data removal starts at once, due within the removal window
    assert view.state == "purge-pending"
    stored = world.db.memberships[membership.id]
    assert stored.purge_started_at == world.now
    assert stored.removal_due_by == world.now + POLICY.removal_window
    # And the removal is sent after the commit
    assert uow.dispatcher.sent == [("remove_data", membership.id)]


def test_a_home_membership_is_not_removed_as_a_guest(world: World) -> None:
    # Given an admin of the home organization and ann's home membership
    world.db.add_role(world.gadmin, world.home, "global-administrator", created_at=START)
    membership = world.home_membership(world.ann)
    uow = world.uow()
    # When the admin tries to remove it, Then it is refused and audited
    with uow, pytest.raises(HomeOrganization):
        admin.remove(uow, world.clock, me(world.gadmin), "home.example", membership.id)
    assert world.db.memberships[membership.id].state == "active"
    assert audit_entries(world.db, membership) == [("remove", "denied", "home-organization")]


def test_someone_who_is_no_admin_is_told_the_organization_does_not_exist(world: World) -> None:
    # Given pat, who holds no role in open
    uow = world.uow()
    # When he tries to remove ann's membership there
    with uow, pytest.raises(NotFound) as refused:
        admin.remove(uow, world.clock, me(world.pat), "open.example", world.ann_open.id)
    # Then he is told what a made-up name is told
    assert refused.value.detail == "No organization 'open.example'."
    # And nothing changes, and the refusal is audited as forbidden, on open, pat named by his
    # guest membership's pseudonym
    assert world.db.memberships[world.ann_open.id].state == "active"
    [entry] = world.db.audit
    assert (entry.action, entry.outcome, entry.reason) == ("remove", "denied", "forbidden")
    assert (entry.organization_id, entry.actor) == (world.open.id, world.pat_open.pseudonym)


def test_an_organization_that_does_not_exist_is_named_in_the_answer(world: World) -> None:
    # When the admin removes a membership of an organization nobody has, and looks it up
    uow = world.uow()
    with uow, pytest.raises(NotFound) as removed:
        admin.remove(uow, world.clock, me(world.gadmin), "nowhere.example", world.ann_open.id)
    with uow, pytest.raises(NotFound) as looked_up:
        decisions.organization_or_404(uow, "nowhere.example")
    # Then both are told it does not exist, by the name given; nothing is audited
    assert removed.value.detail == looked_up.value.detail == "No organization 'nowhere.example'."
    assert world.db.audit == []


def test_a_disabled_admin_is_told_why_and_the_refusal_is_audited(world: World) -> None:
    # Given open's admin, whose account is disabled
    world.gadmin.enabled = False
    uow = world.uow()
    # When they try to remove ann's membership of open
    with uow, pytest.raises(Forbidden) as refused:
        admin.remove(uow, world.clock, me(world.gadmin), "open.example", world.ann_open.id)
    # Then they are told why they can do nothing there, and the refusal is audited
    assert refused.value.detail == (
        "Your account is disabled, so the admin roles it holds give no powers. "
        "Ask another admin of the organization to enable it."
    )
    assert world.db.memberships[world.ann_open.id].state == "active"
    [entry] = world.db.audit
    assert (
        entry.action,
        entry.outcome,
        entry.reason,
        entry.organization_id,
        entry.actor,
        entry.occurred_at,
    ) == ("remove", "denied", "forbidden", world.open.id, world.gadmin.id, world.now)


def test_a_membership_of_another_organization_is_not_found_by_this_one_s_admin(
    world: World,
) -> None:
    # Given ann's membership of closed, and an admin of open (and closed)
    uow = world.uow()
    # When the admin names it, or an id that does not exist, as open's
    for membership_id in (world.ann_closed.id, "no-such-membership"):
        with uow, pytest.raises(NotFound) as refused:
            admin.remove(uow, world.clock, me(world.gadmin), "open.example", membership_id)
        # Then it is not found in open, in words that say which and where
        assert refused.value.detail == f"No membership {membership_id!r} in open.example."
    assert world.db.memberships[world.ann_closed.id].state == "active"


def test_an_admin_who_is_also_a_guest_there_acts_under_their_own_id(world: World) -> None:
    # Given open's admin, who is also a collaboration guest of open
    world.db.add_membership(
        world.gadmin, world.open, MembershipKind.B2B_COLLABORATION, created_at=START
    )
    # When they remove ann's membership of open, and are refused a stale removal
    with world.uow() as uow:
        admin.remove(uow, world.clock, me(world.gadmin), "open.example", world.ann_open.id)
    with world.uow() as uow, pytest.raises(PreconditionFailed):
        admin.remove(
            uow,
            world.clock,
            me(world.gadmin),
            "open.example",
            world.pat_open.id,
            expected_version=7,
        )
    # Then both are audited under the admin's id, not their guest membership's pseudonym
    assert [(e.action, e.outcome, e.actor) for e in world.db.audit] == [
        ("remove", "allowed", world.gadmin.id),
        ("remove", "denied", world.gadmin.id),
    ]


def test_the_operator_role_is_required_and_a_refusal_audited_when_asked(world: World) -> None:
    # Given ann, who is no platform operator
    uow = world.uow()
    # When an operation needing the role checks her without saying what she tried (or when)
    with uow, pytest.raises(Forbidden) as refused:
        decisions.require_operator(uow, me(world.ann))
    with uow, pytest.raises(Forbidden):
        decisions.require_operator(uow, me(world.ann), now=world.now)
    # Then she is told what is needed, and nothing is audited
    assert refused.value.detail == "This needs the platform operator role."
    assert world.db.audit == []
    # And when it says what she tried and when, the refusal is audited
    with uow, pytest.raises(Forbidden):
        decisions.require_operator(uow, me(world.ann), now=world.now, action="create_user")
    [entry] = world.db.audit
    assert (entry.action, entry.outcome, entry.reason, entry.actor, entry.occurred_at) == (
        "create_user",
        "denied",
        "forbidden",
        world.ann.id,
        world.now,
    )
    # And once she holds the role, the check lets her through and audits nothing more
    world.db.add_role(world.ann, None, "operator", created_at=START)
    decisions.require_operator(uow, me(world.ann), now=world.now, action="create_user")
    assert len(world.db.audit) == 1


# --- restore ------------------------------------------------------------------------------


def _removed(world: World) -> Membership:
    """ann's membership of open, removed by the admin at ``world.now``."""
    with world.uow() as uow:
        admin.remove(uow, world.clock, me(world.gadmin), "open.example", world.ann_open.id)
    return world.db.memberships[world.ann_open.id]


def test_a_restore_inside_the_retention_period_brings_the_grants_back(world: World) -> None:
    # Given ann's membership of open, removed, and a moment before its purge is due
    membership = _removed(world)
    assert membership.purge_due_at is not None
    world.now = membership.purge_due_at - timedelta(seconds=1)
    uow = world.uow()
    # When the admin restores it
    with uow:
        view = admin.restore(uow, world.clock, me(world.gadmin), "open.example", membership.id)
    # Then it is restored with its grant, and no purge is due any more
    assert (view.state, view.version) == ("restored", 3)
    assert [g.name for g in view.grants] == ["payroll"]
    assert world.db.memberships[membership.id].purge_due_at is None
    assert audit_entries(world.db, membership)[-1] == ("restore", "allowed", None)


@pytest.mark.parametrize("late", [timedelta(0), timedelta(seconds=1)])
def test_a_restore_at_or_after_the_purge_due_time_is_refused(world: World, late: timedelta) -> None:
    # Given ann's removed membership of open, at its purge due time or after it
    membership = _removed(world)
    assert membership.purge_due_at is not None
    world.now = membership.purge_due_at + late
    before = values_of(membership)
    uow = world.uow()
    # When the admin tries to restore it
    with uow, pytest.raises(RestoreWindowClosed):
        admin.restore(uow, world.clock, me(world.gadmin), "open.example", membership.id)
    # Then it stays soft-deleted, and the refusal is audited
    assert values_of(world.db.memberships[membership.id]) == before
    assert audit_entries(world.db, membership)[-1] == (
        "restore",
        "denied",
        "restore-window-closed",
    )


# --- permanent delete and the worker's leave ---------------------------------------------


def test_a_permanent_delete_starts_the_data_removal(world: World) -> None:
    # Given ann's removed membership of open
    membership = _removed(world)
    uow = world.uow()
    # When the admin deletes it permanently
    with uow:
        view = admin.purge(uow, world.clock, me(world.gadmin), "open.example", membership.id)
    # Then its data removal starts, and is sent after the commit
    assert view.state == "purge-pending"
    assert audit_entries(world.db, membership)[-1] == ("purge", "allowed", None)
    assert uow.dispatcher.sent == [("remove_data", membership.id)]


def test_a_permanent_delete_of_an_active_membership_is_not_allowed(world: World) -> None:
    # Given ann's active membership of open
    uow = world.uow()
    # When the admin tries to delete it permanently, Then the lifecycle refuses, saying why
    with uow, pytest.raises(TransitionNotAllowed) as refused:
        admin.purge(uow, world.clock, me(world.gadmin), "open.example", world.ann_open.id)
    assert refused.value.detail == "A membership in state 'active' does not allow 'purge'."
    assert refused.value.extra == {"state": "active"}
    assert world.db.memberships[world.ann_open.id].state == "active"
    assert audit_entries(world.db, world.ann_open) == [
        ("purge", "denied", "transition-not-allowed")
    ]


def test_the_worker_carries_a_leave_out_once(world: World) -> None:
    # Given ann's leave of open, requested
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, me(world.ann), "open.example")
    membership_id = world.ann_open.id
    # When the worker carries it out, twice (a message received again)
    with world.uow() as uow:
        first = automatic.complete_leave(uow, world.clock, membership_id)
    with world.uow() as uow:
        second = automatic.complete_leave(uow, world.clock, membership_id)
    # Then the first moves it to soft-deleted, the second changes nothing
    assert first is not None and first.state == "soft-deleted"
    assert second is None
    assert [a for a, _, _ in audit_entries(world.db, world.ann_open)] == [
        "request_leave",
        "complete_leave",
    ]


# --- stale decisions and rollbacks --------------------------------------------------------


def test_a_decision_on_a_version_that_moved_on_is_refused(world: World) -> None:
    # Given ann's membership of open, still active but one version on since the admin read it
    membership = world.ann_open
    membership.version = 2
    before = values_of(membership)
    uow = world.uow()
    # When the admin removes it, expecting the version read
    with uow, pytest.raises(PreconditionFailed) as refused:
        admin.remove(
            uow, world.clock, me(world.gadmin), "open.example", membership.id, expected_version=1
        )
    assert refused.value.detail == "The membership is at version 2, not 1."
    # Then nothing is written but the refusal, and nothing is sent
    assert values_of(world.db.memberships[membership.id]) == before
    assert audit_entries(world.db, membership) == [("remove", "denied", "precondition-failed")]
    assert uow.dispatcher.sent == []


def test_a_row_changed_while_the_decision_was_made_is_not_overwritten(world: World) -> None:
    # Given ann's membership of open as the admin read it, and another decision that moved
    # the stored row on since (same state, version + 1)
    read = copy_of(world.ann_open)
    world.ann_open.version += 1
    before = values_of(world.ann_open)
    uow = world.uow()
    # When the admin's removal is applied to the row as read
    with uow, pytest.raises(Conflict) as refused:
        admin.remove_membership(uow, world.now, me(world.gadmin), world.open, read)
    assert refused.value.detail == (
        "The membership changed while 'remove' was being decided; read it again."
    )
    # Then the stored row is untouched and only the refusal is audited
    assert values_of(world.db.memberships[read.id]) == before
    assert audit_entries(world.db, read) == [("remove", "denied", "conflict")]
    assert uow.dispatcher.sent == []


def test_nothing_is_sent_or_kept_when_the_unit_of_work_rolls_back(world: World) -> None:
    # Given pat's direct connect membership of open
    membership = world.pat_open
    uow = world.uow()
    # When the admin's removal is decided but the transaction ends without a commit
    with uow:
        admin.remove_membership(uow, world.now, me(world.gadmin), world.open, membership)
        assert world.db.memberships[membership.id].state == "purge-pending"
    # Then no removal is sent, and the membership and the audit log are as they were
    assert uow.dispatcher.sent == []
    assert not uow.committed
    assert world.db.memberships[membership.id].state == "active"
    assert world.db.memberships[membership.id].version == 1
    assert world.db.audit == []


def test_a_refusal_keeps_nothing_the_unit_of_work_had_begun(world: World) -> None:
    # Given an admin of the home organization who has removed pat's membership of open,
    # not yet committed
    world.db.add_role(world.gadmin, world.home, "global-administrator", created_at=START)
    uow = world.uow()
    with uow:
        admin.remove_membership(uow, world.now, me(world.gadmin), world.open, world.pat_open)
        # When, in the same unit of work, a removal of ann's home membership is refused
        with pytest.raises(HomeOrganization):
            admin.remove_membership(
                uow, world.now, me(world.gadmin), world.home, world.home_membership(world.ann)
            )
    # Then the first removal is gone with the refusal's rollback; only the refusal is kept
    assert world.db.memberships[world.pat_open.id].state == "active"
    assert [(e.action, e.outcome) for e in world.db.audit] == [("remove", "denied")]
    assert uow.dispatcher.sent == []


# --- the Organizations list ---------------------------------------------------------------


def test_the_organizations_list_shows_home_first_then_the_others_by_name(world: World) -> None:
    # Given ann's home membership, her membership of open, and her membership of closed,
    # removed
    world.ann_closed.state = "soft-deleted"
    # When she lists her organizations
    with world.uow() as uow:
        entries = self_service.list_organizations(uow, me(world.ann))
    # Then home comes first, then open; the removed one is not listed
    assert [(e.organization.domain, e.can_leave) for e in entries] == [
        ("home.example", False),
        ("open.example", True),
    ]
    assert entries[0].leave_blocked_reason == "home-organization"


# --- settings -----------------------------------------------------------------------------


def test_changing_the_leave_setting_records_one_event(world: World) -> None:
    # Given open, which lets guests leave
    uow = world.uow()
    # When its admin disallows it, then saves the same value again
    with uow:
        view = admin.set_external_user_leave_allowed(
            uow, world.clock, me(world.gadmin), "open.example", False
        )
    with world.uow() as again:
        admin.set_external_user_leave_allowed(
            again, world.clock, me(world.gadmin), "open.example", False
        )
    # Then the setting is off, both decisions are audited, and one change is recorded
    assert view.external_user_leave_allowed is False
    assert [(e.action, e.reason) for e in world.db.audit] == [
        ("set_external_user_leave_allowed", "disallowed")
    ] * 2
    [event] = world.db.events
    assert event["type"] == "organization.settings_changed"
    assert event["data"]["changed"] == ["externalUserLeaveAllowed"]
