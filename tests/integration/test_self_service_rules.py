"""docs/domain.md, "The Organizations list" and "Leaving", the member's side:
addressing organizations, the Organizations list,
leaving, and the cases where leaving is refused. Run through the use cases on a real
database (SQLite, and PostgreSQL when ``TEST_DATABASE_URL`` is set)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, event, select

from memberships import admin, automatic, provisioning, self_service
from memberships.errors import (
    AccountDisabled,
    HomeOrganization,
    InvalidInput,
    LeaveDenied,
    LeaveDisabled,
    NotFound,
    PreconditionFailed,
    TransitionNotAllowed,
)
from memberships.principal import SYSTEM, Principal
from memberships.validation import valid_domain
from memberships.views import MembershipView
from store.models import Membership

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import World

RETENTION = timedelta(days=30)  # the Policy default the fixtures use
REMOVAL_WINDOW = timedelta(days=30)


def _membership(world: World, org: str, user: str) -> Membership:
    with world.uow() as uow:
        row = uow.session.get(Membership, world.membership(org, user))
        assert row is not None
        uow.session.expunge(row)
        return row


# --- organizations are addressed by id or domain ------------------------------------------


def test_an_organization_is_addressed_by_its_id_or_its_domain(world: World) -> None:
    # Given the open organization's id, its domain, and its domain in another case
    refs = [world.orgs["open"], world.orgs["open"].upper(), "open.example", " Open.Example "]
    # When ann looks at it, addressing it each way
    for ref in refs:
        with world.uow() as uow:
            entry = self_service.get_my_organization(uow, world.principal("ann"), ref)
        # Then the same organization is found
        assert entry.organization.id == world.orgs["open"], ref
    # And she can leave it addressed by domain
    with world.uow() as uow:
        left = self_service.request_leave(uow, world.clock, world.principal("ann"), refs[-1])
    assert left.id == world.membership("open", "ann")
    assert left.state == "leave-pending"


def test_no_domain_looks_like_a_guid() -> None:
    # A reference that reads as a GUID is looked up as an organization's id only: no
    # organization's domain can read as one, since a domain needs a dot and a GUID has none
    guid = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
    for spelling in (guid, guid.upper(), guid.replace("-", ""), f"{{{guid}}}", f"urn:uuid:{guid}"):
        with pytest.raises(InvalidInput):
            valid_domain(spelling)


@pytest.mark.parametrize("address", ["id", "domain"])
def test_an_admin_addresses_the_organization_by_id_or_domain(world: World, address: str) -> None:
    # Given ann's soft-deleted membership in open
    ref = world.orgs["open"] if address == "id" else "open.example"
    membership_id = world.membership("open", "ann")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), ref, membership_id)
    # When the admin restores it addressing the organization that way
    with world.uow() as uow:
        restored = admin.restore(uow, world.clock, world.principal("gadmin"), ref, membership_id)
    # Then it is restored
    assert restored.state == "restored"


@pytest.mark.parametrize(
    "ref", ["nowhere.example", "7c9e6679-7425-40de-944b-e07fc1f90ae7", "not a domain"]
)
def test_an_unknown_organization_is_not_found(world: World, ref: str) -> None:
    # Given an address that names no organization
    # When ann tries to leave it, Then it is not found and nothing is audited as a decision
    before = world.last_audit_id()
    with world.uow() as uow, pytest.raises(NotFound) as refused:
        self_service.request_leave(uow, world.clock, world.principal("ann"), ref)
    assert refused.value.detail == f"You are not a member of {ref!r}."
    assert world.audit_after(before) == []


def test_a_signed_in_user_unknown_here_is_told_so(world: World) -> None:
    # Given someone signed in whose user id this service does not know
    stranger = Principal.user("0b7c2f5e-3d1a-4c8e-9f60-2a4b6c8d0e1f")
    # When they list their organizations, look at one or leave one (one they could not be
    # a member of, and one that exists)
    calls = [
        lambda uow: self_service.list_organizations(uow, stranger),
        lambda uow: self_service.get_my_organization(uow, stranger, "open.example"),
        lambda uow: self_service.request_leave(uow, world.clock, stranger, world.orgs["open"]),
    ]
    for call in calls:
        # Then it is not found, and the answer says it is they who are unknown (not that
        # they are no member)
        with world.uow() as uow, pytest.raises(NotFound) as refused:
            call(uow)
        assert refused.value.detail == "The signed-in user is not known to this service."


# --- the Organizations list ----------------------------------------------------------------


def test_the_home_organization_is_listed_first_and_never_leavable(world: World) -> None:
    # Given ann, whose home is home.example and who is a guest of open, closed and bare
    # When she lists her organizations
    with world.uow() as uow:
        entries = self_service.list_organizations(uow, world.principal("ann"))
    # Then home comes first, without a way to leave it; the others follow by name, each
    # saying whether she can leave and, if not, why
    listed = [
        (e.organization.domain, e.is_home, e.can_leave, e.leave_blocked_reason) for e in entries
    ]
    assert listed == [
        ("home.example", True, False, "home-organization"),
        ("bare.example", False, True, None),
        ("closed.example", False, False, "leave-disabled"),
        ("open.example", False, True, None),
    ]
    # And each entry shows her membership there as stored
    with world.uow() as uow:
        for entry in entries:
            stored = uow.memberships.live_membership(world.users["ann"], entry.organization.id)
            assert stored is not None
            assert entry.membership == MembershipView.of(stored), entry.organization.domain


def test_the_others_are_listed_by_name_whatever_the_case_of_its_letters(world: World) -> None:
    # Given ann also a guest of "ab corp" and "A_C Corp": by name regardless of case, "a_c"
    # comes before "ab" ("_" sorts before the letters); compared in capitals, "AB" would
    # come before "A_C" (capitals sort before "_")
    for domain, name in (("ab.example", "ab corp"), ("ac.example", "A_C Corp")):
        with world.uow() as uow:
            org = provisioning.create_organization(
                uow, world.clock, SYSTEM, domain, name, None, None
            )
        with world.uow() as uow:
            provisioning.add_guest(
                uow, world.clock, SYSTEM, org.id, world.users["ann"], "b2b-collaboration"
            )
    # When she lists her organizations
    with world.uow() as uow:
        entries = self_service.list_organizations(uow, world.principal("ann"))
    # Then after home they come by name, compared without regard to case
    assert [e.organization.display_name for e in entries] == [
        "Home",
        "A_C Corp",
        "ab corp",
        "Bare",
        "Closed",
        "Open",
    ]


def test_a_personal_account_lists_its_organizations_without_a_home(world: World) -> None:
    # Given pat, a personal account without a home organization, guest of open
    # When pat lists organizations
    with world.uow() as uow:
        entries = self_service.list_organizations(uow, world.principal("pat"))
    # Then there is no home entry, only the organization pat collaborates with
    assert [(e.organization.domain, e.is_home, e.can_leave) for e in entries] == [
        ("open.example", False, True)
    ]


@pytest.mark.parametrize("user", ["off", "dis"])
def test_a_disabled_account_is_listed_as_unable_to_leave(world: World, user: str) -> None:
    # Given off (disabled in the home organization) and dis (disabled in open)
    # When they list their organizations
    with world.uow() as uow:
        entries = self_service.list_organizations(uow, world.principal(user))
    # Then open is listed as not leavable because the account is disabled
    open_entry = next(e for e in entries if e.organization.domain == "open.example")
    assert open_entry.can_leave is False
    assert open_entry.leave_blocked_reason == "account-disabled"


def test_a_soft_deleted_membership_is_hidden_from_the_list(world: World) -> None:
    # Given ann has left open and the leave was carried out
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, world.membership("open", "ann"))
    # When she lists her organizations
    with world.uow() as uow:
        domains = [
            e.organization.domain
            for e in self_service.list_organizations(uow, world.principal("ann"))
        ]
    # Then open is no longer there
    assert "open.example" not in domains
    assert domains[0] == "home.example"


# --- leaving -------------------------------------------------------------------------------


def test_a_collaboration_guest_leaves_and_is_soft_deleted_for_the_retention_period(
    world: World, dispatcher: object
) -> None:
    # Given ann, a B2B collaboration guest of open, which lets external users leave
    membership_id = world.membership("open", "ann")
    asked_at = world.clock()
    # When she leaves
    with world.uow() as uow:
        pending = self_service.request_leave(
            uow, world.clock, world.principal("ann"), "open.example"
        )
    # Then the leave is accepted and handed to a worker after the commit
    assert pending.state == "leave-pending"
    assert pending.leave_requested_at == asked_at
    assert ("complete_leave", membership_id) in dispatcher.sent  # type: ignore[attr-defined]
    # When the worker carries it out a minute later
    done_at = world.clock.advance(timedelta(minutes=1))
    with world.uow() as uow:
        done = automatic.complete_leave(uow, world.clock, membership_id)
    # Then the membership is soft-deleted and its purge is due after the retention period
    assert done is not None
    assert done.state == "soft-deleted"
    assert done.soft_deleted_at == done_at
    assert done.purge_due_at == done_at + RETENTION
    assert done.removal_due_by is None
    assert done.email == "ann@mail.example"  # still restorable: nothing erased yet


def test_a_direct_connect_guest_leaving_starts_data_removal_at_once(
    world: World, dispatcher: object
) -> None:
    # Given pat, a B2B direct connect guest of open
    membership_id = world.membership("open", "pat")
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("pat"), "open.example")
    # When the leave is carried out
    started_at = world.clock.advance(timedelta(seconds=5))
    with world.uow() as uow:
        done = automatic.complete_leave(uow, world.clock, membership_id)
    # Then there is no soft-deleted period: data removal starts, due within the window
    assert done is not None
    assert done.state == "purge-pending"
    assert done.soft_deleted_at is None
    assert done.purge_due_at is None
    assert done.purge_started_at == started_at
    assert done.removal_due_by == started_at + REMOVAL_WINDOW
    assert ("remove_data", membership_id) in dispatcher.sent  # type: ignore[attr-defined]


def test_completing_a_leave_twice_changes_nothing(world: World) -> None:
    # Given ann's leave of open has been carried out
    membership_id = world.membership("open", "ann")
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with world.uow() as uow:
        automatic.complete_leave(uow, world.clock, membership_id)
    version = _membership(world, "open", "ann").version
    # When the worker's message is delivered again
    with world.uow() as uow:
        again = automatic.complete_leave(uow, world.clock, membership_id)
    # Then nothing happens
    assert again is None
    assert _membership(world, "open", "ann").version == version


def test_a_restored_membership_can_be_left_again(world: World) -> None:
    # Given ann's membership in open was removed and restored
    membership_id = world.membership("open", "ann")
    with world.uow() as uow:
        admin.remove(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    with world.uow() as uow:
        admin.restore(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    # When she leaves
    with world.uow() as uow:
        left = self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    # Then the leave is accepted
    assert left.state == "leave-pending"


def test_a_pending_leave_cannot_be_requested_twice(world: World) -> None:
    # Given ann's leave of open is pending
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    before = world.last_audit_id()
    # When she asks again, Then the lifecycle refuses it and the refusal is audited
    with world.uow() as uow, pytest.raises(TransitionNotAllowed):
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    [denial] = world.audit_after(before)
    assert (denial.outcome, denial.reason, denial.from_state) == (
        "denied",
        "transition-not-allowed",
        "leave-pending",
    )


def test_a_pending_leave_is_a_conflict_even_once_the_organization_disallows_leaving(
    world: World,
) -> None:
    # Given ann's leave of open is pending, and then open stops letting guests leave
    with world.uow() as uow:
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    with world.uow() as uow:
        admin.set_external_user_leave_allowed(
            uow, world.clock, world.principal("gadmin"), "open.example", False
        )
    before = world.last_audit_id()
    # When she asks to leave again
    # Then it is the lifecycle's refusal (409), not a rule asking her to contact anyone
    with world.uow() as uow, pytest.raises(TransitionNotAllowed):
        self_service.request_leave(uow, world.clock, world.principal("ann"), "open.example")
    [denial] = world.audit_after(before)
    assert (denial.reason, denial.from_state) == ("transition-not-allowed", "leave-pending")
    # and her list says the same
    with world.uow() as uow:
        entries = self_service.list_organizations(uow, world.principal("ann"))
    [entry] = [e for e in entries if e.organization.domain == "open.example"]
    assert (entry.can_leave, entry.leave_blocked_reason) == (False, "transition-not-allowed")


def test_a_leave_with_a_stale_expected_version_is_a_failed_precondition(world: World) -> None:
    # Given ann read her membership of open at some version, and it changed since (removed
    # and restored by the admin)
    membership_id = world.membership("open", "ann")
    seen = _membership(world, "open", "ann").version
    world.soft_delete()
    with world.uow() as uow:
        admin.restore(uow, world.clock, world.principal("gadmin"), "open.example", membership_id)
    current = _membership(world, "open", "ann")
    before = world.last_audit_id()
    # When she leaves with the version she saw
    with world.uow() as uow, pytest.raises(PreconditionFailed):
        self_service.request_leave(
            uow, world.clock, world.principal("ann"), "open.example", expected_version=seen
        )
    # Then nothing changes and the refusal is audited
    after = _membership(world, "open", "ann")
    assert (after.state, after.version) == ("restored", current.version)
    [denial] = world.audit_after(before)
    assert (denial.action, denial.reason) == ("request_leave", "precondition-failed")
    # And with the version as it is now, she leaves
    with world.uow() as uow:
        left = self_service.request_leave(
            uow,
            world.clock,
            world.principal("ann"),
            "open.example",
            expected_version=current.version,
        )
    assert (left.state, left.version) == ("leave-pending", current.version + 1)


def test_a_member_cannot_leave_for_someone_else(world: World) -> None:
    # Given pat, who is not a member of closed (ann is)
    # When pat asks to leave closed, Then it is not found: self-service acts only on the
    # caller's own memberships, and ann's membership is untouched
    with world.uow() as uow, pytest.raises(NotFound):
        self_service.request_leave(uow, world.clock, world.principal("pat"), "closed.example")
    assert _membership(world, "closed", "ann").state == "active"


# --- when leaving is refused ---------------------------------------------------------------

OPEN_CONTACTS = {
    "privacy_contact_email": "privacy@open.example",
    "privacy_statement_url": "https://open.example/privacy",
}
CLOSED_CONTACTS = {
    "privacy_contact_email": "privacy@closed.example",
    "privacy_statement_url": "https://closed.example/p",
}


ASK_TO_BE_REMOVED = (
    "Contact the organization's admin or privacy contact and ask them to remove you."
)
HOME_DETAIL = (
    "Home is your home organization: you can't leave it, only its admin can remove your "
    "account. Contact the organization's admin or privacy contact if you want your account "
    "removed."
)
DISABLED_DETAIL = "Your account is disabled, so you can't leave Open yourself. " + ASK_TO_BE_REMOVED
DISALLOWED_DETAIL = "Closed does not let external users leave on their own. " + ASK_TO_BE_REMOVED


@pytest.mark.parametrize(
    ("user", "org", "error", "contacts", "detail"),
    [
        pytest.param("ann", "home", HomeOrganization, {}, HOME_DETAIL, id="home-organization"),
        pytest.param(
            "off", "open", AccountDisabled, OPEN_CONTACTS, DISABLED_DETAIL, id="disabled-at-home"
        ),
        pytest.param(
            "dis", "open", AccountDisabled, OPEN_CONTACTS, DISABLED_DETAIL, id="disabled-in-org"
        ),
        pytest.param(
            "ann", "closed", LeaveDisabled, CLOSED_CONTACTS, DISALLOWED_DETAIL, id="org-disallows"
        ),
    ],
)
def test_a_refused_leave_names_the_contacts_changes_nothing_and_is_audited(
    world: World,
    dispatcher: object,
    user: str,
    org: str,
    error: type[LeaveDenied],
    contacts: dict[str, str],
    detail: str,
) -> None:
    # Given a membership the member may not leave on their own
    if org == "home":
        with world.uow() as uow:
            membership = uow.session.scalar(
                select(Membership).where(
                    Membership.user_id == world.users[user],
                    Membership.organization_id == world.orgs["home"],
                )
            )
            assert membership is not None
            membership_id, version = membership.id, membership.version
    else:
        row = _membership(world, org, user)
        membership_id, version = row.id, row.version
    before = world.last_audit_id()
    # When they ask to leave
    with world.uow() as uow, pytest.raises(error) as refused:
        self_service.request_leave(uow, world.clock, world.principal(user), world.orgs[org])
    # Then the answer has its own code, says why in words naming the organization and
    # tells them to contact the admin or privacy contact, and carries exactly the contacts
    # the organization has
    assert refused.value.code == error.code
    assert refused.value.extra["contacts"] == contacts
    assert refused.value.detail == detail
    # And nothing changed and nothing was sent to a worker
    with world.uow() as uow:
        after = uow.session.get(Membership, membership_id)
        assert after is not None
        assert (after.state, after.version, after.leave_requested_at) == (
            "active",
            version,
            None,
        )
    assert dispatcher.sent == []  # type: ignore[attr-defined]
    # And the denial is in the audit log: who, what, from which state, why
    [denial] = world.audit_after(before)
    assert denial.actor == world.pseudonym(membership_id)
    assert denial.action == "request_leave"
    assert denial.outcome == "denied"
    assert denial.reason == error.code
    assert denial.membership_id == membership_id
    assert denial.organization_id == world.orgs[org]
    assert denial.from_state == "active"
    assert denial.to_state is None


PARTIAL_PROFILES = [
    ("none.example", None, None, {}),
    (
        "mail.example",
        "privacy@mail.example",
        None,
        {"privacy_contact_email": "privacy@mail.example"},
    ),
    (
        "page.example",
        None,
        "https://page.example/privacy",
        {"privacy_statement_url": "https://page.example/privacy"},
    ),
]


def test_a_refused_leave_shows_only_the_contacts_the_organization_has(world: World) -> None:
    for domain, privacy_email, privacy_url, contacts in PARTIAL_PROFILES:
        # Given an organization with part of a privacy profile, and a disabled guest in it
        with world.uow() as uow:
            provisioning.create_organization(
                uow, world.clock, SYSTEM, domain, domain, privacy_email, privacy_url
            )
        with world.uow() as uow:
            provisioning.add_guest(
                uow,
                world.clock,
                SYSTEM,
                domain,
                world.users["ann"],
                "b2b-collaboration",
                enabled=False,
            )
        # When the guest asks to leave
        with world.uow() as uow, pytest.raises(AccountDisabled) as refused:
            self_service.request_leave(uow, world.clock, world.principal("ann"), domain)
        # Then only what the organization has is shown, nothing made up
        assert refused.value.extra["contacts"] == contacts, domain


def test_a_member_may_leave_once_the_organization_allows_it_again(world: World) -> None:
    # Given closed disallows leaving, and its admin changes that
    with world.uow() as uow:
        admin.set_external_user_leave_allowed(
            uow, world.clock, world.principal("cadmin"), "closed.example", True
        )
    # When ann leaves closed
    with world.uow() as uow:
        left = self_service.request_leave(
            uow, world.clock, world.principal("ann"), "closed.example"
        )
    # Then it is accepted
    assert left.state == "leave-pending"


# --- what a leave costs the database ------------------------------------------------------

# Read the caller, the organization and the membership (one joined query), move the
# membership (an UPDATE that returns the row), append the audit entry.
LEAVE_STATEMENTS = 3
# What follows every change, in its transaction (store.transitions._after_write): the
# event (PostgreSQL: one INSERT … SELECT; elsewhere the row is read, then inserted), the
# membership's open removal requests (none here), and whether the organization has an
# endpoint to tell at once. A leave asks for no notice and no app confirmation.
AFTER_CHANGE_STATEMENTS = {"postgresql": 3, "sqlite": 4}


@pytest.mark.parametrize("address", ["id", "domain"])
def test_a_leave_takes_three_statements_and_what_follows_every_change_and_returns_the_row(
    world: World, engine: Engine, address: str
) -> None:
    # Given ann's active membership of open, addressed by id or by domain
    ref = world.orgs["open"] if address == "id" else "open.example"
    before = _membership(world, "open", "ann")
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        # SQLite's explicit BEGIN IMMEDIATE (store.database) is the transaction, not a query.
        if not statement.lstrip().upper().startswith("BEGIN"):
            statements.append(statement)

    # When she leaves it
    event.listen(engine, "before_cursor_execute", count)
    try:
        with world.uow() as uow:
            left = self_service.request_leave(uow, world.clock, world.principal("ann"), ref)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    # Then the decision took three statements: read, compare-and-set, audit
    decision = [statement.lstrip().split()[0].upper() for statement in statements[:3]]
    assert decision == ["SELECT", "UPDATE", "INSERT"], statements
    assert "audit_events" in statements[2]
    # And what follows every change took no more than its share
    follows = AFTER_CHANGE_STATEMENTS[engine.dialect.name]
    assert len(statements) <= LEAVE_STATEMENTS + follows, statements
    # And what she gets back is the row as stored: the new state, the next version
    stored = _membership(world, "open", "ann")
    assert left == MembershipView.of(stored)
    assert (left.state, left.version) == ("leave-pending", before.version + 1)
    assert left.leave_requested_at == world.clock()
