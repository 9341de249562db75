"""The lookups of ``store/queries.py`` (``uow.directory``, ``uow.memberships``,
``uow.audit``) that the rules reach only through pages and mail: whose admin roles
count, whose addresses an organization's admins are asked at, and which of a
membership's audit rows was the last allowed one. Each test builds its rows directly,
so that the order a query promises differs from the order they were written in. Run on
SQLite, and on PostgreSQL when ``TEST_DATABASE_URL`` is set."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from memberships import provisioning
from memberships.principal import SYSTEM
from store.models import Organization, RoleAssignment, User
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
