"""The demo: a few organizations and users that cover every rule of the lifecycle.

- contoso.example: privacy profile, external users may leave.
- fabrikam.example: privacy profile, external users may *not* leave.
- northwind.example: no privacy profile (the leave setting cannot be changed).
- woodgrove.example: the home organization of the work accounts below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from memberships import provisioning as p
from memberships.clock import Clock
from memberships.errors import AlreadyExists
from memberships.principal import SYSTEM
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


def seed(uow_factory: Callable[[], UnitOfWork], clock: Clock) -> int:
    """Create whatever of the demo is missing; returns how many objects were made."""
    made = 0

    def attempt(call: Callable[[UnitOfWork], Any]) -> None:
        nonlocal made
        with uow_factory() as uow:
            try:
                call(uow)
                made += 1
            except AlreadyExists:
                pass

    for domain, name, email, url, leave in ORGANIZATIONS:
        attempt(
            lambda u, a=(domain, name, email, url, leave): p.create_organization(
                u, clock, SYSTEM, a[0], a[1], a[2], a[3], external_user_leave_allowed=a[4]
            )
        )
    for email, name, home, enabled in USERS:
        attempt(
            lambda u, a=(email, name, home, enabled): p.create_user(
                u, clock, SYSTEM, a[0], a[1], a[2], enabled=a[3]
            )
        )
    for org, user, kind, enabled in GUESTS:
        attempt(
            lambda u, a=(org, user, kind, enabled): p.add_guest(
                u, clock, SYSTEM, a[0], a[1], a[2], enabled=a[3]
            )
        )
    for org, user, kind, name in GRANTS:
        attempt(
            lambda u, a=(org, user, kind, name): p.add_grant(
                u, clock, SYSTEM, a[0], a[1], a[2], a[3]
            )
        )
    fresh = made
    for org, user, count in DATA:
        if fresh:  # data only on the first seeding, so reruns do not pile up records
            attempt(
                lambda u, a=(org, user, count): p.add_member_data(
                    u, clock, SYSTEM, a[0], a[1], a[2]
                )
            )
    for org, user, role in ROLES:
        attempt(lambda u, a=(org, user, role): p.grant_role(u, clock, SYSTEM, a[1], a[2], a[0]))
    return made
