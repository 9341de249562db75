"""The demo: a few organizations and users that cover every rule of the lifecycle.

- contoso.example: privacy profile, external users may leave.
- fabrikam.example: privacy profile, external users may *not* leave.
- northwind.example: no privacy profile (the leave setting cannot be changed).
- woodgrove.example: the home organization of the work accounts below.

Users: alice (home woodgrove; a guest of the other three, with grants and data
in contoso), bob (a personal account with no home organization; a collaboration
guest of contoso and a direct-connect guest of northwind), carol (disabled in
contoso), dan (a direct-connect guest of contoso), erin (account disabled in her
home organization; a guest of contoso), the admins of contoso (Global
Administrator), fabrikam (External Identity Provider Administrator) and
northwind, and ops (platform operator).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from memberships import provisioning as p
from memberships.clock import Clock
from memberships.errors import AlreadyExists
from memberships.principal import SYSTEM
from statemachines.membership import MembershipState
from store.unit_of_work import UnitOfWork

ORGANIZATIONS = [
    (
        "woodgrove.example",
        "Woodgrove Bank",
        "privacy@woodgrove.example",
        "https://woodgrove.example/privacy",
        True,
    ),
    (
        "contoso.example",
        "Contoso",
        "privacy@contoso.example",
        "https://contoso.example/privacy",
        True,
    ),
    (
        "fabrikam.example",
        "Fabrikam",
        "privacy@fabrikam.example",
        "https://fabrikam.example/privacy",
        False,
    ),
    ("northwind.example", "Northwind Traders", None, None, True),
]

# (e-mail, name, home organization, enabled)
USERS = [
    ("alice@woodgrove.example", "Alice Example", "woodgrove.example", True),
    ("bob@personal.example", "Bob Example", None, True),
    ("carol@woodgrove.example", "Carol Example", "woodgrove.example", True),
    ("dan@personal.example", "Dan Example", None, True),
    ("erin@woodgrove.example", "Erin Example", "woodgrove.example", False),
    ("admin@contoso.example", "Contoso Admin", "contoso.example", True),
    ("idp-admin@fabrikam.example", "Fabrikam IdP Admin", "fabrikam.example", True),
    ("admin@northwind.example", "Northwind Admin", "northwind.example", True),
    ("ops@woodgrove.example", "Platform Operator", "woodgrove.example", True),
]

# (organization, user, kind, enabled in that organization)
GUESTS = [
    ("contoso.example", "alice@woodgrove.example", "b2b-collaboration", True),
    ("fabrikam.example", "alice@woodgrove.example", "b2b-collaboration", True),
    ("northwind.example", "alice@woodgrove.example", "b2b-collaboration", True),
    ("contoso.example", "bob@personal.example", "b2b-collaboration", True),
    ("northwind.example", "bob@personal.example", "b2b-direct-connect", True),
    ("contoso.example", "carol@woodgrove.example", "b2b-collaboration", False),
    ("contoso.example", "dan@personal.example", "b2b-direct-connect", True),
    ("contoso.example", "erin@woodgrove.example", "b2b-collaboration", True),
]

GRANTS = [
    ("contoso.example", "alice@woodgrove.example", "group", "Sales"),
    ("contoso.example", "alice@woodgrove.example", "app-role", "Expenses.Reader"),
    ("contoso.example", "bob@personal.example", "group", "Partners"),
    ("northwind.example", "alice@woodgrove.example", "group", "Suppliers"),
]

DATA = [
    ("contoso.example", "alice@woodgrove.example", 25),
    ("contoso.example", "bob@personal.example", 10),
    ("northwind.example", "bob@personal.example", 10),
    ("contoso.example", "dan@personal.example", 10),
]

# (organization or None, user, role)
ROLES = [
    ("contoso.example", "admin@contoso.example", "global-administrator"),
    ("fabrikam.example", "idp-admin@fabrikam.example", "external-identity-provider-administrator"),
    ("northwind.example", "admin@northwind.example", "global-administrator"),
    (None, "ops@woodgrove.example", "operator"),
]


@dataclass
class SeedReport:
    """What a run of the seed did: how many objects it made, how many of each kind were
    already there, and the demo memberships it left alone because they have moved on in
    their lifecycle (``(user, organization, state)``)."""

    created: int = 0
    existing: Counter[str] = field(default_factory=Counter)
    left_as_they_are: list[tuple[str, str, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The summary the command prints: one line, and one per membership left alone."""
        summary = f"demo: {self.created} objects created"
        there = [f"{self.existing[kind]} {kind}" for kind in KINDS if self.existing[kind]]
        if there:
            summary += f"; already there: {', '.join(there)}"
        return [summary] + [
            f"demo: {user} in {org} is {state}: left as it is"
            for user, org, state in self.left_as_they_are
        ]


# The kinds of object the seed makes, in the order it makes them (and reports them).
KINDS = ("organizations", "users", "guest memberships", "grants", "data sets", "roles")


def seed(uow_factory: Callable[[], UnitOfWork], clock: Clock) -> SeedReport:
    """Create whatever of the demo is missing; report what was made and what was there.

    Safe to run again, whatever happened since: what exists is skipped, and member data
    is added only to a membership that has none, so reruns do not pile up records. A
    demo guest membership that is no longer ``active`` (the member left, an admin
    removed, restored or deleted it, it is purged) is left exactly as it is: it is not
    added again, and gets no grants or data.
    """
    report = SeedReport()

    def attempt(kind: str, call: Callable[[UnitOfWork], object]) -> None:
        with uow_factory() as uow:
            try:
                call(uow)
            except AlreadyExists:
                report.existing[kind] += 1
            else:
                report.created += 1

    for domain, name, email, url, leave in ORGANIZATIONS:
        attempt("organizations", partial(_organization, clock, domain, name, email, url, leave))
    for email, name, home, enabled in USERS:
        attempt("users", partial(_user, clock, email, name, home, enabled))
    moved_on: set[tuple[str, str]] = set()
    for org, user, kind, enabled in GUESTS:
        with uow_factory() as uow:
            state = _membership_state(uow, org, user)
        if state is None:
            attempt("guest memberships", partial(_guest, clock, org, user, kind, enabled))
            continue
        report.existing["guest memberships"] += 1
        if state != MembershipState.ACTIVE:
            moved_on.add((org, user))
            report.left_as_they_are.append((user, org, state))
    for org, user, kind, name in GRANTS:
        if (org, user) not in moved_on:
            attempt("grants", partial(_grant, clock, org, user, kind, name))
    for org, user, count in DATA:
        if (org, user) not in moved_on:
            attempt("data sets", partial(_data, clock, org, user, count))
    for role_org, user, role in ROLES:
        attempt("roles", partial(_role, clock, role_org, user, role))
    return report


def _membership_state(uow: UnitOfWork, org: str, user: str) -> str | None:
    """The state of the user's membership in the organization that is not purged; ``None``
    when there is none (a tombstone no longer names its user) or either is missing."""
    organization = uow.directory.find_organization(org)
    member = uow.directory.find_user(user)
    if organization is None or member is None:
        return None
    membership = uow.memberships.live_membership(member.id, organization.id)
    return None if membership is None else membership.state


def _organization(
    clock: Clock,
    domain: str,
    name: str,
    email: str | None,
    url: str | None,
    leave: bool,
    uow: UnitOfWork,
) -> object:
    return p.create_organization(
        uow, clock, SYSTEM, domain, name, email, url, external_user_leave_allowed=leave
    )


def _user(
    clock: Clock, email: str, name: str, home: str | None, enabled: bool, uow: UnitOfWork
) -> object:
    return p.create_user(uow, clock, SYSTEM, email, name, home, enabled=enabled)


def _guest(clock: Clock, org: str, user: str, kind: str, enabled: bool, uow: UnitOfWork) -> object:
    return p.add_guest(uow, clock, SYSTEM, org, user, kind, enabled=enabled)


def _grant(clock: Clock, org: str, user: str, kind: str, name: str, uow: UnitOfWork) -> object:
    return p.add_grant(uow, clock, SYSTEM, org, user, kind, name)


def _data(clock: Clock, org: str, user: str, count: int, uow: UnitOfWork) -> object:
    organization = uow.directory.find_organization(org)
    member = uow.directory.find_user(user)
    membership = (
        uow.memberships.live_membership(member.id, organization.id)
        if organization and member
        else None
    )
    if membership is not None and uow.memberships.count_member_data(membership.id):
        raise AlreadyExists(f"{user} already has data in {org}.")
    return p.add_member_data(uow, clock, SYSTEM, org, user, count)


def _role(clock: Clock, org: str | None, user: str, role: str, uow: UnitOfWork) -> object:
    return p.grant_role(uow, clock, SYSTEM, user, role, org)


DEMO_DOMAINS = frozenset(domain for domain, *_ in ORGANIZATIONS)


def organizations_beyond_the_demo(uow: UnitOfWork) -> list[str]:
    """The domains of the organizations that are not the demo's (a reset would erase them)."""
    from sqlalchemy import select

    from store.models import Organization

    return list(
        uow.session.scalars(
            select(Organization.domain)
            .where(Organization.domain.not_in(sorted(DEMO_DOMAINS)))
            .order_by(Organization.domain)
        )
    )


def reset_database(
    database_url: str, uow_factory: Callable[[], UnitOfWork], release: Callable[[], None]
) -> list[str]:
    """Empty the database (every migration down, then up again) so the demo can be seeded
    as new. Refuses, with the reason, when it holds any organization but the demo's:
    then it is not a demo database. ``release`` closes the caller's connections first."""
    from store.migrate import current, downgrade, upgrade

    if current(database_url) is not None:
        with uow_factory() as uow:
            others = organizations_beyond_the_demo(uow)
        if others:
            shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
            raise DemoResetRefused(
                f"the database holds organizations that are not the demo's ({shown}): "
                "--reset erases everything, so it only runs on a demo database"
            )
        release()
        downgrade(database_url, "base")
    upgrade(database_url)
    return ["demo: the database is emptied; seeding the demo as new"]


class DemoResetRefused(Exception):
    """``seed-demo --reset`` would erase more than the demo."""
