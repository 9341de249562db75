"""The lookups and writes of ``store/queries.py`` (``uow.directory``, ``uow.memberships``,
``uow.audit``) as repositories: those the rules reach only through pages and mail (whose
admin roles count, whose addresses an organization's admins are asked at, which of a
membership's audit rows was the last allowed one), and those every rule stands on (finding
an organization or a user by reference, roles per place, a disabled account, the live
membership, adding one, a refresh with the row lock, an audit entry's fields). Each test
builds its rows directly, where it can so that the order a query promises differs from the
order they were written in. Run on SQLite, and on PostgreSQL when ``TEST_DATABASE_URL`` is
set (the row lock on PostgreSQL only)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, text, update
from sqlalchemy.exc import OperationalError

from memberships import provisioning
from memberships.principal import SYSTEM
from store.models import Membership, Organization, RoleAssignment, User
from store.unit_of_work import UnitOfWork

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import FakeClock, World

GA = "global-administrator"
IDP = "external-identity-provider-administrator"


def _id(digit: str) -> str:
    """A GUID of one repeated hex digit: ids whose order a test chooses."""
    return f"{digit * 8}-{digit * 4}-{digit * 4}-{digit * 4}-{digit * 12}"


def _add(uow_factory: Callable[[], UnitOfWork], rows: list[object]) -> None:
    with uow_factory() as uow:
        for row in rows:
            uow.session.add(row)
            uow.session.flush()  # one at a time: the order written is the order given
        uow.commit()


def _org(clock: FakeClock, digit: str, name: str) -> Organization:
    return Organization(
        id=_id(digit), domain=f"{digit}.example", display_name=name, created_at=clock()
    )


def _user(clock: FakeClock, digit: str, email: str | None, *, enabled: bool = True) -> User:
    return User(id=_id(digit), email=email, display_name="U", enabled=enabled, created_at=clock())


def _role(clock: FakeClock, user: str, org: str | None, role: str) -> RoleAssignment:
    return RoleAssignment(
        user_id=_id(user), organization_id=_id(org) if org else None, role=role, created_at=clock()
    )


def test_the_organizations_a_user_administers_are_those_of_her_admin_roles_by_name_then_id(
    uow_factory: Callable[[], UnitOfWork], clock: FakeClock
) -> None:
    # Given organizations written in neither name nor id order: Zeta, Alpha, two named Mid
    # (the larger id first) and Beta; and a user (1) with an admin role in each but Beta,
    # two of them in Zeta, and the platform operator role; another user (2) admin of Beta
    _add(
        uow_factory,
        [
            _org(clock, "1", "Zeta"),
            _org(clock, "9", "Alpha"),
            _org(clock, "f", "Mid"),
            _org(clock, "0", "Mid"),
            _org(clock, "3", "Beta"),
            _user(clock, "a", "admin@mail.example"),
            _user(clock, "b", "other@mail.example"),
            _role(clock, "a", "1", GA),
            _role(clock, "a", "1", IDP),
            _role(clock, "a", "9", IDP),
            _role(clock, "a", "f", GA),
            _role(clock, "a", "0", GA),
            _role(clock, "a", None, "operator"),
            _role(clock, "b", "3", GA),
        ],
    )
    # When the organizations each administers are read
    with uow_factory() as uow:
        hers = [o.id for o in uow.directory.organizations_administered_by(_id("a"))]
        others = [o.id for o in uow.directory.organizations_administered_by(_id("b"))]
        nobodys = uow.directory.organizations_administered_by(_id("c"))
    # Then each organization of hers comes once, by display name and then by id
    assert hers == [_id("9"), _id("0"), _id("f"), _id("1")]
    assert others == [_id("3")] and list(nobodys) == []


def test_an_organizations_admins_are_asked_at_the_addresses_of_its_enabled_admins_by_address(
    uow_factory: Callable[[], UnitOfWork], clock: FakeClock
) -> None:
    # Given organizations 1, 2 and 3, and users written in reverse order of their
    # addresses: zed (admin of 1), bob (of 2), amy (of 1 twice, and of 2), a disabled
    # admin of 1, an admin of 1 without an address, cat (admin of 3 only) and an operator
    _add(
        uow_factory,
        [
            _org(clock, "1", "One"),
            _org(clock, "2", "Two"),
            _org(clock, "3", "Three"),
            _user(clock, "a", "zed@mail.example"),
            _user(clock, "b", "bob@mail.example"),
            _user(clock, "c", "amy@mail.example"),
            _user(clock, "d", "aaa-disabled@mail.example", enabled=False),
            _user(clock, "e", None),
            _user(clock, "f", "cat@mail.example"),
            _user(clock, "9", "aaa-ops@mail.example"),
            _role(clock, "a", "1", GA),
            _role(clock, "b", "2", IDP),
            _role(clock, "c", "1", GA),
            _role(clock, "c", "1", IDP),
            _role(clock, "c", "2", GA),
            _role(clock, "d", "1", GA),
            _role(clock, "e", "1", GA),
            _role(clock, "f", "3", GA),
            _role(clock, "9", None, "operator"),
        ],
    )
    # When the addresses of the admins of 1 and 2 are read
    with uow_factory() as uow:
        rows = uow.directory.admin_emails_of([_id("1"), _id("2")])
        none = uow.directory.admin_emails_of([])
    # Then each enabled admin with an address comes once per organization, by address
    assert [email for _, email in rows] == [
        "amy@mail.example",
        "amy@mail.example",
        "bob@mail.example",
        "zed@mail.example",
    ]
    assert sorted(rows) == sorted(
        [
            (_id("1"), "amy@mail.example"),
            (_id("2"), "amy@mail.example"),
            (_id("2"), "bob@mail.example"),
            (_id("1"), "zed@mail.example"),
        ]
    )
    assert none == []


def test_the_last_allowed_action_is_the_newest_allowed_one_of_those_asked_on_that_membership(
    world: World,
) -> None:
    # Given ann's membership of open with, oldest first: an allowed request_leave, an
    # allowed remove, an allowed restore, a denied complete_leave; and an allowed
    # complete_leave on pat's membership after them all
    ann, pat = world.membership("open", "ann"), world.membership("open", "pat")
    entries = [
        (ann, "request_leave", "allowed"),
        (ann, "remove", "allowed"),
        (ann, "restore", "allowed"),
        (ann, "complete_leave", "denied"),
        (pat, "complete_leave", "allowed"),
    ]
    with world.uow() as uow:
        for membership_id, action, outcome in entries:
            world.clock.advance(timedelta(seconds=1))
            uow.audit.append(
                occurred_at=world.clock(),
                actor="someone",
                action=action,
                outcome=outcome,
                organization_id=world.orgs["open"],
                membership_id=membership_id,
            )
        uow.commit()
    asked = ("remove", "complete_leave", "request_leave")
    # When the last allowed of the asked actions is read for each membership
    with world.uow() as uow:
        found = {
            who: uow.audit.last_allowed_action(world.membership("open", who), asked)
            for who in ("ann", "pat", "dis")
        }
        only_leave = uow.audit.last_allowed_action(ann, ("request_leave",))
    # Then ann's is her remove (not the newer restore, not the denied finish, not pat's),
    # and a membership without any has none
    assert found == {"ann": "remove", "pat": "complete_leave", "dis": None}
    assert only_leave == "request_leave"


def test_an_organization_is_read_by_its_id_and_an_unknown_id_reads_nothing(world: World) -> None:
    # Given the organizations open and closed
    # When each is read by its id, and an id no organization has
    with world.uow() as uow:
        found = [uow.directory.organization(world.orgs[k]) for k in ("open", "closed")]
        domains = [o.domain if o else None for o in found]
        unknown = uow.directory.organization(_id("0"))
    # Then each id reads its own organization, and the unknown one nothing
    assert domains == ["open.example", "closed.example"] and unknown is None


def test_the_platform_operator_role_counts_only_for_an_enabled_account(
    world: World, clock: FakeClock
) -> None:
    # Given ops (operator), gadmin (an admin of open, no platform role), and off (account
    # disabled at home) given the operator role too
    with world.uow() as uow:
        uow.session.add(
            RoleAssignment(
                user_id=world.users["off"],
                organization_id=None,
                role="operator",
                created_at=clock(),
            )
        )
        uow.commit()
    # When each is asked whether they are the platform operator
    with world.uow() as uow:
        answers = {
            who: uow.directory.is_operator(world.users[who]) for who in ("ops", "gadmin", "off")
        }
    # Then only the enabled operator is
    assert answers == {"ops": True, "gadmin": False, "off": False}


def test_a_memberships_grants_are_listed_by_kind_then_name(world: World) -> None:
    # Given pat's membership of open given, in this order, the groups Beta and Alpha and
    # the app role Zulu (neither the order of the names nor that of the kinds alone)
    for kind, name in [("group", "Beta"), ("group", "Alpha"), ("app-role", "Zulu")]:
        with world.uow() as uow:
            provisioning.add_grant(
                uow, world.clock, SYSTEM, world.orgs["open"], world.users["pat"], kind, name
            )
    # When pat's grants are listed
    with world.uow() as uow:
        grants = [
            (g.kind, g.name) for g in uow.memberships.grants_of(world.membership("open", "pat"))
        ]
    # Then they come by kind, then by name, and only pat's
    assert grants == [("app-role", "Zulu"), ("group", "Alpha"), ("group", "Beta")]


def test_an_organization_is_found_by_its_id_or_its_domain_whatever_the_case_and_spaces(
    world: World,
) -> None:
    # Given the organizations open, closed, bare and home
    open_id = world.orgs["open"]
    refs = [
        f"  {open_id.upper()} ",  # its id, in capitals, with spaces around
        " Closed.EXAMPLE ",  # a domain, in mixed case, with spaces around
        _id("0"),  # an id no organization has
        "nowhere.example",  # a domain no organization has
        "",
        None,
    ]
    # When each is looked up by id or domain
    with world.uow() as uow:
        found = [uow.directory.find_organization(ref) for ref in refs]  # type: ignore[arg-type]
        ids = [o.id if o else None for o in found]
    # Then the id finds open and the domain closed; the others find nothing
    assert ids == [
        open_id,
        world.orgs["closed"],
        None,
        None,
        None,
        None,
    ]


def test_a_user_is_found_by_id_or_e_mail_whatever_the_case_and_spaces(world: World) -> None:
    # Given the world's users (ann@mail.example, pat@mail.example, …)
    refs = [
        f" {world.users['ann'].upper()}  ",  # her id, in capitals, with spaces around
        " PAT@Mail.Example ",  # an address, in mixed case, with spaces around
        _id("0"),  # an id no user has
        "nobody@mail.example",  # an address no user has
        "",
        None,
    ]
    # When each is looked up
    with world.uow() as uow:
        found = [uow.directory.find_user(ref) for ref in refs]  # type: ignore[arg-type]
        ids = [u.id if u else None for u in found]
    # Then the id finds ann and the address pat; the others find nothing
    assert ids == [
        world.users["ann"],
        world.users["pat"],
        None,
        None,
        None,
        None,
    ]


def test_a_users_roles_are_those_held_in_the_organization_asked_or_on_the_platform(
    uow_factory: Callable[[], UnitOfWork], clock: FakeClock
) -> None:
    # Given organizations 1 and 2; user a: global administrator of 1, identity-provider
    # administrator of 2 and platform operator; user b: identity-provider admin of 1
    _add(
        uow_factory,
        [
            _org(clock, "1", "One"),
            _org(clock, "2", "Two"),
            _user(clock, "a", "a@mail.example"),
            _user(clock, "b", "b@mail.example"),
            _role(clock, "a", "1", GA),
            _role(clock, "a", "2", IDP),
            _role(clock, "a", None, "operator"),
            _role(clock, "b", "1", IDP),
        ],
    )
    # When their roles are read in 1, in 2 and on the platform (no organization)
    with uow_factory() as uow:
        roles = {
            (user, org): uow.directory.roles_of(_id(user), _id(org) if org else None)
            for user in ("a", "b", "c")
            for org in ("1", "2", None)
        }
    # Then each read gives the roles of that user in that place only
    assert roles == {
        ("a", "1"): {GA},
        ("a", "2"): {IDP},
        ("a", None): {"operator"},
        ("b", "1"): {IDP},
        ("b", "2"): set(),
        ("b", None): set(),
        ("c", "1"): set(),
        ("c", "2"): set(),
        ("c", None): set(),
    }


def test_an_account_is_disabled_at_home_or_in_the_organization_asked_and_then_acts_in_no_role(
    uow_factory: Callable[[], UnitOfWork], clock: FakeClock
) -> None:
    # Given organizations 1, 2 and a home 3; and users, each admin of 1 and of 2:
    # a (home 3, enabled there; guest of 1 disabled, guest of 2 enabled), h (home 3,
    # disabled there), x (the account disabled), n (no home, no membership)
    rows: list[object] = [_org(clock, d, f"Org {d}") for d in ("1", "2", "3")]
    for user, home, enabled in [("a", "3", True), ("h", "3", True), ("x", None, False)]:
        rows.append(_user(clock, user, f"{user}@mail.example", enabled=enabled))
        rows[-1].home_organization_id = _id(home) if home else None  # type: ignore[attr-defined]
    rows.append(_user(clock, "n", "n@mail.example"))
    for user, org, kind, enabled in [
        ("a", "3", "home", True),
        ("a", "1", "b2b-collaboration", False),
        ("a", "2", "b2b-collaboration", True),
        ("h", "3", "home", False),
    ]:
        rows.append(
            Membership(
                user_id=_id(user),
                organization_id=_id(org),
                kind=kind,
                enabled=enabled,
                created_at=clock(),
            )
        )
    rows += [_role(clock, u, o, GA) for u in ("a", "h", "x", "n") for o in ("1", "2")]
    _add(uow_factory, rows)
    # When each is asked whether disabled (at home, in 1, in 2), and whether admin there
    places = (None, "1", "2")
    with uow_factory() as uow:
        directory = uow.directory
        disabled = {
            u: [directory.is_disabled(_id(u), _id(o) if o else None) for o in places]
            for u in ("a", "h", "x", "n", "0")
        }
        admin = {u: [directory.is_admin_of(_id(u), _id(o)) for o in ("1", "2")] for u in "ahxn"}
    # Then a is disabled in 1 only, and acts as admin of 2 only; h and x are disabled
    # everywhere, and admin nowhere; n (no membership anywhere) is enabled; an unknown
    # user counts as disabled
    assert disabled == {
        "a": [False, True, False],
        "h": [True, True, True],
        "x": [True, True, True],
        "n": [False, False, False],
        "0": [True, True, True],
    }
    assert admin == {
        "a": [False, True],
        "h": [False, False],
        "x": [False, False],
        "n": [True, True],
    }


def _id_of(row: Membership | None) -> str | None:
    return row.id if row else None


def _ids_of(found: tuple[User, Organization, Membership] | None) -> tuple[str, ...] | None:
    return tuple(row.id for row in found) if found else None


def test_a_live_membership_is_found_by_user_and_organization_only(world: World) -> None:
    # Given ann a guest of open, closed and bare; pat of open only
    pairs = [("ann", "open"), ("ann", "closed"), ("pat", "open"), ("pat", "closed")]
    # When each user's live membership of each organization is read, by ids and by
    # reference (the domain in capitals, or the id)
    with world.uow() as uow:
        by_ids = {
            (u, o): _id_of(uow.memberships.live_membership(world.users[u], world.orgs[o]))
            for u, o in pairs
        }
        by_ref = {
            (u, o, how): _ids_of(uow.memberships.live_membership_of(world.users[u], ref))
            for u, o in pairs
            for how, ref in [("domain", f" {o.upper()}.EXAMPLE "), ("id", world.orgs[o])]
        }
    # Then each finds that user's membership of that organization, and pat's of closed none
    expected = {pair: world.memberships.get((pair[1], pair[0])) for pair in pairs}
    assert by_ids == expected
    assert by_ref == {
        (u, o, how): (world.users[u], world.orgs[o], expected[(u, o)]) if expected[(u, o)] else None
        for u, o, how in by_ref
    }


def test_a_membership_is_added_once_per_user_and_organization_with_the_users_fields(
    world: World, clock: FakeClock
) -> None:
    # Given pat (a guest of open only)
    now = clock()
    # When pat is added to closed (enabled by default), to closed again, to bare disabled,
    # all in one unit of work
    with world.uow() as uow:
        pat = uow.directory.user(world.users["pat"])
        assert pat is not None
        first = uow.memberships.add_membership(pat, world.orgs["closed"], "b2b-collaboration", now)
        again = uow.memberships.add_membership(pat, world.orgs["closed"], "b2b-direct-connect", now)
        off = uow.memberships.add_membership(
            pat, world.orgs["bare"], "b2b-direct-connect", now, enabled=False
        )
        assert first is not None and off is not None
        ids = (first.id, off.id)
        uow.commit()
    # Then the second add to closed adds nothing (and leaves the unit of work usable), and
    # each new membership is active, with her e-mail and name as they were
    assert again is None
    with world.uow() as uow:
        rows = [uow.memberships.get(i) for i in ids]
        fields = [
            (m.user_id, m.organization_id, m.kind, m.enabled, m.state, m.email, m.display_name)
            for m in rows
            if m is not None
        ]
        created = [m.created_at for m in rows if m is not None]
    pat_id, closed, bare = world.users["pat"], world.orgs["closed"], world.orgs["bare"]
    assert fields == [
        (pat_id, closed, "b2b-collaboration", True, "active", "pat@mail.example", "Pat"),
        (pat_id, bare, "b2b-direct-connect", False, "active", "pat@mail.example", "Pat"),
    ]
    assert created == [now, now]


def _renamed_behind_the_session(uow: UnitOfWork, membership_id: str, name: str) -> None:
    uow.session.execute(
        update(Membership)
        .where(Membership.id == membership_id)
        .values(display_name=name)
        .execution_options(synchronize_session=False)
    )


def test_a_refresh_reads_the_memberships_row_again_with_or_without_the_lock(world: World) -> None:
    # Given ann's membership of open, loaded, then renamed by a statement the session does
    # not follow
    membership_id = world.membership("open", "ann")
    with world.uow() as uow:
        membership = uow.memberships.get(membership_id)
        assert membership is not None and membership.display_name == "Ann"
        _renamed_behind_the_session(uow, membership_id, "Ann B")
        # When it is refreshed, and after a second change refreshed with the lock
        uow.memberships.refresh(membership)
        unlocked = membership.display_name
        _renamed_behind_the_session(uow, membership_id, "Ann C")
        uow.memberships.refresh(membership, lock=True)
        locked = membership.display_name
    # Then each refresh reads the row as it is now
    assert (unlocked, locked) == ("Ann B", "Ann C")


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_refresh_with_the_lock_holds_the_row_until_the_commit_and_one_without_does_not(
    world: World, engine: Engine
) -> None:
    # Given ann's membership of open
    membership_id = world.membership("open", "ann")

    def lockable_from_elsewhere() -> bool:
        with engine.connect() as other:
            try:
                other.execute(
                    text("SELECT id FROM memberships WHERE id = :id FOR UPDATE NOWAIT"),
                    {"id": membership_id},
                )
            except OperationalError:
                return False
            return True

    # When it is refreshed in a unit of work, without and then with the lock, and another
    # connection tries to lock the row (without waiting) after each and after the commit
    with world.uow() as uow:
        membership = uow.memberships.get(membership_id)
        assert membership is not None
        uow.memberships.refresh(membership)
        after_plain = lockable_from_elsewhere()
        uow.memberships.refresh(membership, lock=True)
        after_lock = lockable_from_elsewhere()
        uow.commit()
    after_commit = lockable_from_elsewhere()
    # Then only the refresh with the lock holds it, until the commit
    assert (after_plain, after_lock, after_commit) == (True, False, True)


def test_an_audit_entry_is_appended_with_every_field_given_and_allowed_unless_told(
    world: World,
) -> None:
    # Given ann's membership of open and its audit rows so far
    ann = world.membership("open", "ann")
    before = world.last_audit_id()
    # When an entry with every field is appended, then one with only the required ones
    with world.uow() as uow:
        uow.audit.append(
            occurred_at=world.clock(),
            actor="someone",
            action="restore",
            outcome="denied",
            organization_id=world.orgs["open"],
            membership_id=ann,
            from_state="soft-deleted",
            to_state="restored",
            reason="not-found",
            request_id="req-1",
        )
        uow.audit.append(occurred_at=world.clock(), actor="system", action="sweep")
        uow.commit()
    # Then the first keeps each field as given; the second is allowed, with nothing else
    rows = [
        (
            r.occurred_at,
            r.actor,
            r.action,
            r.outcome,
            r.organization_id,
            r.membership_id,
            r.from_state,
            r.to_state,
            r.reason,
            r.request_id,
        )
        for r in world.audit_after(before)
    ]
    now = world.clock()
    assert rows == [
        (
            now,
            "someone",
            "restore",
            "denied",
            world.orgs["open"],
            ann,
            "soft-deleted",
            "restored",
            "not-found",
            "req-1",
        ),
        (now, "system", "sweep", "allowed", None, None, None, None, None, None),
    ]
