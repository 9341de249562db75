"""docs/domain.md, "The audit log": every decision, allowed or denied, is written to
the audit log — who,
what, when, from which state to which, and why — and a denial changes nothing else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from memberships import admin, automatic, decisions, provisioning, self_service
from memberships.errors import LifecycleError
from memberships.removal import remove_all_data
from store import transitions
from store.models import Membership, Organization
from store.unit_of_work import UnitOfWork

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import World

Snapshot = tuple[list[tuple[str, str, int]], list[tuple[str, bool, str | None]]]


def _snapshot(world: World) -> Snapshot:
    """Everything a decision could change: memberships and organization settings."""
    with world.uow() as uow:
        memberships = [
            (m.id, m.state, m.version)
            for m in uow.session.scalars(select(Membership).order_by(Membership.id))
        ]
        orgs = [
            (o.id, o.external_user_leave_allowed, o.privacy_contact_email)
            for o in uow.session.scalars(select(Organization).order_by(Organization.id))
        ]
    return memberships, orgs


# Each case: how to set it up (returning the decision to attempt), the actor, the action
# and the code the audit entry must carry.
Attempt = Callable[[UnitOfWork], object]


def _leave(world: World, user: str, org: str) -> Attempt:
    return lambda uow: self_service.request_leave(uow, world.clock, world.principal(user), org)


def case_home_organization(world: World) -> tuple[Attempt, str, str]:
    return _leave(world, "ann", "home.example"), "ann", "request_leave"


def case_account_disabled(world: World) -> tuple[Attempt, str, str]:
    return _leave(world, "off", "open.example"), "off", "request_leave"


def case_leave_disabled(world: World) -> tuple[Attempt, str, str]:
    return _leave(world, "ann", "closed.example"), "ann", "request_leave"


def case_privacy_profile_required(world: World) -> tuple[Attempt, str, str]:
    def attempt(uow: UnitOfWork) -> object:
        return admin.set_external_user_leave_allowed(
            uow, world.clock, world.principal("bareadmin"), "bare.example", False
        )

    return attempt, "bareadmin", "set_external_user_leave_allowed"


def case_forbidden(world: World) -> tuple[Attempt, str, str]:
    membership_id = world.membership("open", "ann")

    def attempt(uow: UnitOfWork) -> object:
        return admin.remove(
            uow, world.clock, world.principal("cadmin"), "open.example", membership_id
        )

    return attempt, "cadmin", "remove"


def case_forbidden_provisioning(world: World) -> tuple[Attempt, str, str]:
    def attempt(uow: UnitOfWork) -> object:
        return provisioning.create_organization(
            uow, world.clock, world.principal("gadmin"), "mine.example", "Mine"
        )

    return attempt, "gadmin", "create_organization"


def case_transition_not_allowed(world: World) -> tuple[Attempt, str, str]:
    membership_id = world.membership("open", "ann")

    def attempt(uow: UnitOfWork) -> object:
        return admin.purge(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id
        )

    return attempt, "gadmin", "purge"


def case_restore_window_closed(world: World) -> tuple[Attempt, str, str]:
    membership_id = world.soft_delete()
    world.clock.advance(timedelta(days=31))

    def attempt(uow: UnitOfWork) -> object:
        return admin.restore(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id
        )

    return attempt, "gadmin", "restore"


def case_precondition_failed(world: World) -> tuple[Attempt, str, str]:
    membership_id = world.membership("open", "ann")

    def attempt(uow: UnitOfWork) -> object:
        return admin.remove(
            uow,
            world.clock,
            world.principal("idpadmin"),
            "open.example",
            membership_id,
            expected_version=99,
        )

    return attempt, "idpadmin", "remove"


def case_conflict(world: World, monkeypatch: pytest.MonkeyPatch) -> tuple[Attempt, str, str]:
    # Another decision moves the row between the read and the compare-and-set. (The real
    # race between two connections is in test_races_postgresql.py; here the "other"
    # change is made on the same connection, so the denial's rollback undoes it too.)
    membership_id = world.soft_delete()
    real = transitions.compare_and_set

    def someone_else_first(
        session: Session, membership: Membership, to_state: str, **fields: object
    ) -> bool:
        session.execute(
            update(Membership)
            .where(Membership.id == membership.id)
            .values(state="purge-pending", version=Membership.version + 1)
            .execution_options(synchronize_session=False)
        )
        return real(session, membership, to_state, **fields)

    monkeypatch.setattr(transitions, "compare_and_set", someone_else_first)

    def attempt(uow: UnitOfWork) -> object:
        return admin.restore(
            uow, world.clock, world.principal("gadmin"), "open.example", membership_id
        )

    return attempt, "gadmin", "restore"


CASES = {
    "home-organization": case_home_organization,
    "account-disabled": case_account_disabled,
    "leave-disabled": case_leave_disabled,
    "privacy-profile-required": case_privacy_profile_required,
    "forbidden": case_forbidden,
    "forbidden-provisioning": case_forbidden_provisioning,
    "transition-not-allowed": case_transition_not_allowed,
    "restore-window-closed": case_restore_window_closed,
    "precondition-failed": case_precondition_failed,
}


@pytest.mark.parametrize("code", [*CASES, "conflict"])
def test_every_denied_decision_is_audited_and_changes_nothing(
    world: World, dispatcher: object, monkeypatch: pytest.MonkeyPatch, code: str
) -> None:
    # Given a decision that must be denied with ``code``
    if code == "conflict":
        attempt, actor, action = case_conflict(world, monkeypatch)
    else:
        attempt, actor, action = CASES[code](world)
    snapshot = _snapshot(world)
    before = world.last_audit_id()
    sent = list(dispatcher.sent)  # type: ignore[attr-defined]
    # When it is attempted
    with world.uow() as uow, pytest.raises(LifecycleError) as denied:
        attempt(uow)
    # Then the caller gets that code (a caller with no role in the organization is told it
    # is not found, as a made-up one would be; the log says why)
    told = {"forbidden": "not-found"}.get(code, code.removesuffix("-provisioning"))
    assert denied.value.code == told
    # And exactly one audit entry records who, what, when and why
    [entry] = world.audit_after(before)
    assert entry.outcome == "denied"
    assert entry.reason == code.removesuffix("-provisioning")
    assert entry.action == action
    expected = world.pseudonym(entry.membership_id) if actor in ("ann", "dis", "off") else None
    assert entry.actor == (expected or world.users[actor])
    assert entry.occurred_at == world.clock()
    assert entry.to_state is None
    if code == "conflict":
        # the state the decision read (the other writer's change went with the rollback)
        assert entry.from_state == "soft-deleted"
    # And nothing changed and nothing was sent
    assert _snapshot(world) == snapshot
    assert dispatcher.sent == sent  # type: ignore[attr-defined]


def test_every_allowed_transition_is_audited_with_who_when_and_the_states(world: World) -> None:
    # Given ann's membership in open
    membership_id = world.membership("open", "ann")
    before = world.last_audit_id()
    steps: list[tuple[str, str, str, str]] = []

    def step(actor: str, action: str, from_state: str, to_state: str) -> None:
        steps.append((actor, action, from_state, to_state))

    # When she leaves, the leave is carried out, an admin restores her, she leaves again,
    # and the membership is finally purged, each a minute apart
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    step(world.actor("ann", "open"), "request_leave", "active", "leave-pending")
    world.clock.advance(timedelta(minutes=1))
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, membership_id)
    step("worker", "complete_leave", "leave-pending", "soft-deleted")
    world.clock.advance(timedelta(minutes=1))
    with world.uow() as uow:
        admin.restore(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    step(world.users["gadmin"], "restore", "soft-deleted", "restored")
    world.clock.advance(timedelta(minutes=1))
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("idpadmin"), "open.example", membership_id)
    step(world.users["idpadmin"], "remove", "restored", "soft-deleted")
    world.clock.advance(timedelta(minutes=1))
    with world.uow() as uow:
        admin.purge(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    step(world.users["gadmin"], "purge", "soft-deleted", "purge-pending")
    world.clock.advance(timedelta(minutes=1))
    with world.uow() as uow:
        remove_all_data(uow, world.clock, membership_id)
    step("worker", "finish_removal", "purge-pending", "purged")
    # Then each transition is in the audit log, in order, a minute apart, with its actor
    entries = [e for e in world.audit_after(before) if e.membership_id == membership_id]
    assert [(e.actor, e.action, e.from_state, e.to_state) for e in entries] == steps
    assert all(e.outcome == "allowed" for e in entries)
    assert all(e.organization_id == world.orgs["open"] for e in entries)
    times = [e.occurred_at for e in entries]
    assert all(b - a == timedelta(minutes=1) for a, b in zip(times, times[1:], strict=False))


def test_an_allowed_entry_says_who_what_when_where_from_which_state_and_in_which_request(
    world: World,
) -> None:
    # Given ann's membership of open
    membership_id = world.membership("open", "ann")
    before = world.last_audit_id()
    # When a decision of hers on it is audited, within a request, naming the membership only
    with world.uow() as uow:
        uow.request_id = "req-audit-1"
        membership = uow.session.get(Membership, membership_id)
        assert membership is not None
        decisions.audit(
            uow,
            world.clock(),
            world.principal("ann"),
            "open_removal_request",
            membership=membership,
            from_state="active",
            to_state="soft-deleted",
            reason="leave-disabled",
        )
        uow.commit()
    # Then the entry has every one of them, and the membership's organization
    [entry] = world.audit_after(before)
    assert (
        entry.actor,
        entry.action,
        entry.outcome,
        entry.organization_id,
        entry.membership_id,
        entry.from_state,
        entry.to_state,
        entry.reason,
        entry.request_id,
        entry.occurred_at,
    ) == (
        world.pseudonym(membership_id),
        "open_removal_request",
        "allowed",
        world.orgs["open"],
        membership_id,
        "active",
        "soft-deleted",
        "leave-disabled",
        "req-audit-1",
        world.clock(),
    )


def test_an_entry_names_a_member_on_their_own_membership_and_a_guest_by_the_pseudonym(
    world: World,
) -> None:
    # Given gadmin, an admin of open whose home open is, and ann, a guest of open
    with world.uow() as uow:
        home = uow.memberships.live_membership(world.users["gadmin"], world.orgs["open"])
        assert home is not None and home.kind == "home"
        home_id, home_pseudonym = home.id, home.pseudonym
    before = world.last_audit_id()
    # When gadmin acts on their own membership, and on open as its admin, and ann acts in
    # open without naming her membership
    with world.uow() as uow:
        home = uow.session.get(Membership, home_id)
        assert home is not None
        now = world.clock()
        decisions.audit(uow, now, world.principal("gadmin"), "add_member_data", membership=home)
        decisions.audit(
            uow,
            now,
            world.principal("gadmin"),
            "set_privacy_profile",
            organization_id=home.organization_id,
        )
        decisions.audit(
            uow, now, world.principal("ann"), "invite_guest", organization_id=world.orgs["open"]
        )
        uow.commit()
    # Then the member on their own membership is named by its pseudonym (even an admin, at
    # home), the admin on the organization by their id, the guest by her membership's
    # pseudonym
    assert [(e.action, e.actor) for e in world.audit_after(before)] == [
        ("add_member_data", home_pseudonym),
        ("set_privacy_profile", world.users["gadmin"]),
        ("invite_guest", world.actor("ann", "open")),
    ]
    assert world.actor("ann", "open") != world.users["ann"]


def test_the_platform_operator_provisions_and_is_audited_by_their_id(world: World) -> None:
    # Given ops, who holds the platform operator role (and is not the service)
    before = world.last_audit_id()
    # When they give ann a role in closed
    with world.uow() as uow:
        granted = provisioning.grant_role(
            uow,
            world.clock,
            world.principal("ops"),
            world.users["ann"],
            "external-identity-provider-administrator",
            "closed.example",
        )
    # Then it is done, and audited under their id on closed
    assert granted["organization_id"] == world.orgs["closed"]
    [entry] = world.audit_after(before)
    assert (entry.actor, entry.action, entry.outcome, entry.organization_id, entry.reason) == (
        world.users["ops"],
        "grant_role",
        "allowed",
        world.orgs["closed"],
        "external-identity-provider-administrator",
    )
