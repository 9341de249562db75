"""The ``lifecycle`` provisioning commands, in process, on each database backend.

Each command prints the object it made as JSON on stdout and accepts organizations by
domain or id and users by e-mail or id. Bad input gets one line on stderr and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result

from cli import Services, main
from memberships import admin, automatic, self_service
from memberships.errors import PrivacyProfileRequired
from memberships.principal import SYSTEM, Principal
from memberships.removal import remove_all_data
from settings import Settings

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import FakeClock


@dataclass
class Cli:
    services: Services
    runner: CliRunner

    def run(self, *args: str) -> Result:
        return self.runner.invoke(main, list(args), obj=self.services)

    def ok(self, *args: str) -> Any:
        """Run a command that must succeed; return the JSON it printed."""
        result = self.run(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return json.loads(result.stdout)

    def refused(self, *args: str, exit_code: int = 1) -> str:
        """Run a command that must fail cleanly; return its one-line error."""
        result = self.run(*args)
        assert result.exit_code == exit_code, (result.stdout, result.stderr, result.exception)
        assert isinstance(result.exception, SystemExit)  # not an escaped exception
        assert result.stdout == ""
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("error: ")
        return lines[0]

    def uow(self) -> Any:
        return self.services.uow()


@pytest.fixture
def cli(database_url: str, clock: FakeClock) -> Iterator[Cli]:
    services = Services(settings=Settings(database_url=database_url), clock=clock)
    yield Cli(services, CliRunner())
    if "session_factory" in services.__dict__:
        services.session_factory.kw["bind"].dispose()


@pytest.fixture
def contoso(cli: Cli) -> dict[str, Any]:
    return cli.ok(
        "org",
        "create",
        "--domain",
        "contoso.example",
        "--name",
        "Contoso",
        "--privacy-email",
        "privacy@contoso.example",
        "--privacy-url",
        "https://contoso.example/privacy",
    )


@pytest.fixture
def alice(cli: Cli, contoso: dict[str, Any]) -> dict[str, Any]:
    cli.ok("org", "create", "--domain", "woodgrove.example", "--name", "Woodgrove")
    return cli.ok(
        "user",
        "create",
        "--email",
        "alice@woodgrove.example",
        "--name",
        "Alice",
        "--home-org",
        "woodgrove.example",
    )


# --- org create ----------------------------------------------------------------------------


def test_org_create_prints_the_organization(cli: Cli) -> None:
    # When an organization with a privacy profile that disallows leaving is created
    org = cli.ok(
        "org",
        "create",
        "--domain",
        "Fabrikam.Example",
        "--name",
        "Fabrikam",
        "--privacy-email",
        "privacy@fabrikam.example",
        "--privacy-url",
        "https://fabrikam.example/privacy",
        "--leave-disallowed",
    )
    # Then it is printed as JSON, its domain normalized
    assert org["domain"] == "fabrikam.example"
    assert org["displayName"] == "Fabrikam"
    assert org["privacyContactEmail"] == "privacy@fabrikam.example"
    assert org["privacyStatementUrl"] == "https://fabrikam.example/privacy"
    assert org["externalUserLeaveAllowed"] is False
    assert len(org["id"]) == 36


def test_org_create_without_a_privacy_profile_allows_leaving(cli: Cli) -> None:
    org = cli.ok("org", "create", "--domain", "northwind.example", "--name", "Northwind")
    assert org["privacyContactEmail"] is None
    assert org["externalUserLeaveAllowed"] is True


ORG_CREATE_REFUSALS = [
    (["--domain", "not a domain", "--name", "X"], 1, "invalid-input: domain"),
    (["--domain", "x.example"], 2, "Missing option '--name'"),
    (["--name", "X"], 2, "Missing option '--domain'"),
    (["--domain", "x.example", "--name", "X", "--leave-disallowed"], 1, "invalid-input"),
    (
        ["--domain", "x.example", "--name", "X", "--privacy-url", "ftp://x.example/p"],
        1,
        "invalid-input: privacy URL",
    ),
    (
        ["--domain", "x.example", "--name", "X", "--privacy-email", "nobody"],
        1,
        "invalid-input: privacy e-mail",
    ),
    (["--domain", "x.example", "--name", "X", "--colour", "red"], 2, "No such option"),
]


def test_org_create_refuses_bad_input_in_one_line(cli: Cli) -> None:
    # Given each kind of bad input, When the command runs, Then it fails in one line
    for args, exit_code, message in ORG_CREATE_REFUSALS:
        assert message in cli.refused("org", "create", *args, exit_code=exit_code), args


def test_org_create_refuses_a_duplicate_domain(cli: Cli, contoso: dict[str, Any]) -> None:
    line = cli.refused("org", "create", "--domain", "CONTOSO.example", "--name", "Again")
    assert line.startswith("error: already-exists:")


# --- user create ---------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["domain", "id"])
def test_user_create_with_a_home_organization(cli: Cli, contoso: dict[str, Any], by: str) -> None:
    # When a work account is created with its home organization given by domain or id
    home = contoso["domain"] if by == "domain" else contoso["id"]
    user = cli.ok(
        "user",
        "create",
        "--email",
        "Carol@Contoso.Example",
        "--name",
        "Carol",
        "--home-org",
        home,
    )
    # Then it is printed with that home, and its home membership can never be left
    assert user["email"] == "carol@contoso.example"
    assert user["homeOrganizationId"] == contoso["id"]
    assert user["enabled"] is True
    with cli.uow() as uow:
        [entry] = self_service.list_organizations(uow, Principal.user(user["id"]))
    assert (entry.is_home, entry.can_leave) == (True, False)


def test_user_create_personal_account_and_disabled_account(cli: Cli) -> None:
    personal = cli.ok("user", "create", "--email", "bob@personal.example", "--name", "Bob")
    disabled = cli.ok(
        "user", "create", "--email", "eve@personal.example", "--name", "Eve", "--disabled"
    )
    assert personal["homeOrganizationId"] is None and personal["enabled"] is True
    assert disabled["enabled"] is False


USER_CREATE_REFUSALS = [
    (["--email", "nobody", "--name", "N"], 1, "invalid-input: email"),
    (
        ["--email", "n@x.example", "--name", "N", "--home-org", "nowhere.example"],
        1,
        "not-found: No organization 'nowhere.example'",
    ),
    (["--email", "n@x.example"], 2, "Missing option '--name'"),
    (["--email", "alice@woodgrove.example", "--name", "A"], 1, "already-exists"),
]


def test_user_create_refuses_bad_input_in_one_line(cli: Cli, alice: dict[str, Any]) -> None:
    # Given each kind of bad input, When the command runs, Then it fails in one line
    for args, exit_code, message in USER_CREATE_REFUSALS:
        assert message in cli.refused("user", "create", *args, exit_code=exit_code), args


# --- guest add -----------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["domain-and-email", "ids"])
@pytest.mark.parametrize("kind", ["b2b-collaboration", "b2b-direct-connect"])
def test_guest_add_makes_an_active_guest_membership(
    cli: Cli, contoso: dict[str, Any], alice: dict[str, Any], by: str, kind: str
) -> None:
    org, user = (
        ("contoso.example", "ALICE@woodgrove.example")
        if by == "domain-and-email"
        else (contoso["id"], alice["id"])
    )
    membership = cli.ok("guest", "add", "--org", org, "--user", user, "--kind", kind)
    assert membership["organizationId"] == contoso["id"]
    assert membership["userId"] == alice["id"]
    assert (membership["kind"], membership["state"], membership["enabled"]) == (
        kind,
        "active",
        True,
    )


def test_guest_add_disabled_guest_cannot_leave(
    cli: Cli, contoso: dict[str, Any], alice: dict[str, Any]
) -> None:
    membership = cli.ok(
        "guest",
        "add",
        "--org",
        "contoso.example",
        "--user",
        alice["email"],
        "--kind",
        "b2b-collaboration",
        "--disabled",
    )
    assert membership["enabled"] is False
    with cli.uow() as uow:
        entries = self_service.list_organizations(uow, Principal.user(alice["id"]))
    assert [(e.organization.domain, e.leave_blocked_reason) for e in entries] == [
        ("woodgrove.example", "home-organization"),
        ("contoso.example", "account-disabled"),
    ]


GUEST_ADD_REFUSALS = [
    (
        ["--org", "contoso.example", "--user", "alice@woodgrove.example", "--kind", "b2b"],
        2,
        "Invalid value for '--kind'",
    ),
    (
        ["--org", "contoso.example", "--user", "alice@woodgrove.example"],
        2,
        "Missing option '--kind'",
    ),
    (
        [
            "--org",
            "nowhere.example",
            "--user",
            "alice@woodgrove.example",
            "--kind",
            "b2b-collaboration",
        ],
        1,
        "not-found: No organization 'nowhere.example'",
    ),
    (
        [
            "--org",
            "contoso.example",
            "--user",
            "nobody@x.example",
            "--kind",
            "b2b-collaboration",
        ],
        1,
        "not-found: No user 'nobody@x.example'",
    ),
    (
        [
            "--org",
            "woodgrove.example",
            "--user",
            "alice@woodgrove.example",
            "--kind",
            "b2b-collaboration",
        ],
        1,
        "invalid-input",
    ),
]


def test_guest_add_refuses_bad_input_in_one_line(cli: Cli, alice: dict[str, Any]) -> None:
    # Given each kind of bad input, When the command runs, Then it fails in one line
    for args, exit_code, message in GUEST_ADD_REFUSALS:
        assert message in cli.refused("guest", "add", *args, exit_code=exit_code), args


def test_guest_add_refuses_a_duplicate(cli: Cli, alice: dict[str, Any]) -> None:
    args = ("guest", "add", "--org", "contoso.example", "--user", alice["email"], "--kind")
    cli.ok(*args, "b2b-collaboration")
    assert cli.refused(*args, "b2b-direct-connect").startswith("error: already-exists:")


# --- grant add, data add -------------------------------------------------------------------


@pytest.fixture
def guest(cli: Cli, alice: dict[str, Any]) -> dict[str, Any]:
    return cli.ok(
        "guest",
        "add",
        "--org",
        "contoso.example",
        "--user",
        alice["email"],
        "--kind",
        "b2b-collaboration",
    )


def test_grant_add_gives_a_group_or_an_app_role(cli: Cli, guest: dict[str, Any]) -> None:
    at = ("--org", "contoso.example", "--user", "alice@woodgrove.example")
    group = cli.ok("grant", "add", *at, "--group", "Sales")
    role = cli.ok("grant", "add", *at, "--app-role", "Expenses.Reader")
    assert (group["kind"], group["name"]) == ("group", "Sales")
    assert (role["kind"], role["name"]) == ("app-role", "Expenses.Reader")


GRANT_ADD_REFUSALS = [
    (
        ["--group", "Sales", "--app-role", "Reader"],
        2,
        "exactly one of --group and --app-role",
    ),
    ([], 2, "exactly one of --group and --app-role"),
    (["--group", "Sales", "--user", "bob@personal.example"], 1, "not-found"),
]


def test_grant_add_refuses_bad_input_in_one_line(cli: Cli, guest: dict[str, Any]) -> None:
    # Given alice's membership in contoso, and bob who is a member of nothing
    cli.ok("user", "create", "--email", "bob@personal.example", "--name", "Bob")
    at = ("--org", "contoso.example", "--user", "alice@woodgrove.example")
    # When grant add gets each kind of bad input, Then it fails in one line
    for extra, exit_code, message in GRANT_ADD_REFUSALS:
        assert message in cli.refused("grant", "add", *at, *extra, exit_code=exit_code), extra


def test_grant_add_refuses_a_duplicate(cli: Cli, guest: dict[str, Any]) -> None:
    args = ("grant", "add", "--org", "contoso.example", "--user", "alice@woodgrove.example")
    cli.ok(*args, "--group", "Sales")
    assert cli.refused(*args, "--group", "Sales").startswith("error: already-exists:")


def test_data_add_records_the_users_data(cli: Cli, guest: dict[str, Any]) -> None:
    # Given alice's guest membership in contoso
    # When records of her data are added, by domain and e-mail
    added = cli.ok(
        "data",
        "add",
        "--org",
        "contoso.example",
        "--user",
        "alice@woodgrove.example",
        "--count",
        "25",
    )
    # Then it prints what it made: the membership holding the records, by id, with
    # the user's and the organization's ids (as guest add prints them), and how many
    assert added == {
        "membershipId": guest["id"],
        "userId": guest["userId"],
        "organizationId": guest["organizationId"],
        "added": 25,
    }
    # And by ids it prints the same ids
    by_ids = cli.ok(
        "data",
        "add",
        "--org",
        guest["organizationId"],
        "--user",
        guest["userId"],
        "--count",
        "5",
    )
    assert by_ids == {**added, "added": 5}
    shown = cli.ok(
        "membership", "show", "--org", "contoso.example", "--user", "alice@woodgrove.example"
    )
    assert shown["memberDataRows"] == 30


def test_data_add_refuses_a_bad_count(cli: Cli, guest: dict[str, Any]) -> None:
    at = ("--org", "contoso.example", "--user", "alice@woodgrove.example")
    for count in ("0", "-3", "many", "1000001"):
        assert "--count" in cli.refused("data", "add", *at, "--count", count, exit_code=2)


# --- role grant ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "role", ["global-administrator", "external-identity-provider-administrator"]
)
def test_role_grant_makes_an_organization_admin(
    cli: Cli, alice: dict[str, Any], contoso: dict[str, Any], role: str
) -> None:
    # When alice is given an admin role in contoso
    granted = cli.ok(
        "role", "grant", "--org", "contoso.example", "--user", alice["email"], "--role", role
    )
    assert (granted["role"], granted["organizationId"]) == (role, contoso["id"])
    # Then she may administer contoso
    with cli.uow() as uow:
        view = admin.set_external_user_leave_allowed(
            uow, cli.services.clock, Principal.user(alice["id"]), "contoso.example", False
        )
    assert view.external_user_leave_allowed is False


def test_role_grant_makes_a_platform_operator(cli: Cli, alice: dict[str, Any]) -> None:
    granted = cli.ok("role", "grant", "--user", alice["id"], "--role", "operator")
    assert (granted["role"], granted["organizationId"]) == ("operator", None)


ROLE_GRANT_REFUSALS = [
    (["--role", "global-administrator"], 1, "invalid-input"),
    (["--role", "operator", "--org", "contoso.example"], 1, "invalid-input"),
    (["--role", "owner", "--org", "contoso.example"], 2, "Invalid value for '--role'"),
    (["--org", "contoso.example"], 2, "Missing option '--role'"),
    (["--role", "global-administrator", "--org", "nowhere.example"], 1, "not-found"),
]


def test_role_grant_refuses_bad_input_in_one_line(cli: Cli, alice: dict[str, Any]) -> None:
    # Given each kind of bad input, When the command runs, Then it fails in one line
    for args, exit_code, message in ROLE_GRANT_REFUSALS:
        line = cli.refused("role", "grant", "--user", alice["email"], *args, exit_code=exit_code)
        assert message in line, args


def test_role_grant_refuses_a_duplicate(cli: Cli, alice: dict[str, Any]) -> None:
    args = ("role", "grant", "--user", alice["email"], "--role", "operator")
    cli.ok(*args)
    assert cli.refused(*args).startswith("error: already-exists:")


# --- membership show -----------------------------------------------------------------------


def test_membership_show_gives_state_timestamps_grants_and_audit_trail(
    cli: Cli, guest: dict[str, Any], clock: FakeClock
) -> None:
    # Given alice's membership with a grant, removed by an admin an hour later
    at = ("--org", "contoso.example", "--user", "alice@woodgrove.example")
    cli.ok("grant", "add", *at, "--group", "Sales")
    clock.advance(timedelta(hours=1))
    with cli.uow() as uow:
        admin.remove(uow, clock, SYSTEM, "contoso.example", guest["id"])
    # When it is shown, by domain and e-mail
    shown = cli.ok("membership", "show", *at)
    # Then its state, timestamps, grants and audit trail are there
    membership = shown["membership"]
    assert membership["id"] == guest["id"]
    assert membership["state"] == "soft-deleted"
    assert membership["softDeletedAt"] == clock().isoformat()
    assert membership["purgeDueAt"] == (clock() + timedelta(days=30)).isoformat()
    assert [(g["kind"], g["name"]) for g in membership["grants"]] == [("group", "Sales")]
    assert [(e["action"], e["toState"]) for e in shown["audit"]] == [
        ("add_guest", "active"),
        ("add_grant", None),
        ("remove", "soft-deleted"),
    ]


def test_membership_show_after_a_purge_no_longer_finds_the_person(
    cli: Cli, guest: dict[str, Any], clock: FakeClock
) -> None:
    # Given alice's membership with a grant and data, purged
    at = ("--org", "contoso.example", "--user", "alice@woodgrove.example")
    cli.ok("grant", "add", *at, "--group", "Sales")
    cli.ok("data", "add", *at, "--count", "3")
    with cli.uow() as uow:
        admin.remove(uow, clock, SYSTEM, "contoso.example", guest["id"])
    clock.advance(timedelta(days=30))
    with cli.uow() as uow:
        automatic.expire_retention(uow, clock, guest["id"])
    with cli.uow() as uow:
        remove_all_data(uow, clock, guest["id"])
    # When it is asked for by the user's id
    result = cli.run(
        "membership", "show", "--org", guest["organizationId"], "--user", guest["userId"]
    )
    # Then the tombstone no longer leads back to her: not found, nothing of her shown
    assert result.exit_code != 0
    assert "not-found" in result.stderr
    assert "alice" not in (result.stdout + result.stderr).lower()


@pytest.mark.parametrize(
    ("org", "user", "message"),
    [
        ("contoso.example", "nobody@x.example", "not-found"),
        ("nowhere.example", "alice@woodgrove.example", "not-found: No organization"),
    ],
)
def test_membership_show_refuses_what_does_not_exist(
    cli: Cli, alice: dict[str, Any], org: str, user: str, message: str
) -> None:
    assert message in cli.refused("membership", "show", "--org", org, "--user", user)


# --- the provisioning CLI can build every situation of the rules ---------------------------


def test_the_provisioning_commands_build_every_situation_of_the_rules(cli: Cli) -> None:
    # Given organizations, users, guests, grants, data and admins made with the CLI alone
    profile = ["--privacy-email", "privacy@{}", "--privacy-url", "https://{}/privacy"]

    def org(domain: str, *extra: str) -> None:
        cli.ok(
            "org",
            "create",
            "--domain",
            domain,
            "--name",
            domain.split(".")[0].title(),
            *[a.format(domain) for a in extra],
        )

    org("woodgrove.example")
    org("contoso.example", *profile)
    org("fabrikam.example", *profile, "--leave-disallowed")
    org("northwind.example")

    def user(email: str, *extra: str) -> str:
        return str(cli.ok("user", "create", "--email", email, "--name", email[:3], *extra)["id"])

    alice = user("alice@woodgrove.example", "--home-org", "woodgrove.example")
    erin = user("erin@woodgrove.example", "--home-org", "woodgrove.example", "--disabled")
    bob = user("bob@personal.example")
    admin_id = user("admin@contoso.example", "--home-org", "contoso.example")
    for domain, who, kind, *extra in [
        ("contoso.example", alice, "b2b-collaboration"),
        ("fabrikam.example", alice, "b2b-collaboration"),
        ("northwind.example", alice, "b2b-collaboration", "--disabled"),
        ("contoso.example", erin, "b2b-collaboration"),
        ("contoso.example", bob, "b2b-direct-connect"),
    ]:
        cli.ok("guest", "add", "--org", domain, "--user", who, "--kind", kind, *extra)
    cli.ok(
        "role",
        "grant",
        "--org",
        "contoso.example",
        "--user",
        admin_id,
        "--role",
        "external-identity-provider-administrator",
    )

    # When each member lists their organizations
    def reasons(user_id: str) -> list[tuple[str, bool, str | None]]:
        with cli.uow() as uow:
            return [
                (e.organization.domain, e.is_home, e.leave_blocked_reason)
                for e in self_service.list_organizations(uow, Principal.user(user_id))
            ]

    # Then every rule of the Organizations page shows up
    assert reasons(alice) == [
        ("woodgrove.example", True, "home-organization"),
        ("contoso.example", False, None),
        ("fabrikam.example", False, "leave-disabled"),
        ("northwind.example", False, "account-disabled"),
    ]
    assert reasons(erin)[1] == ("contoso.example", False, "account-disabled")
    assert reasons(bob) == [("contoso.example", False, None)]
    # And the admin's role and the missing privacy profile work as the rules say
    with cli.uow() as uow:
        admin.set_external_user_leave_allowed(
            uow, cli.services.clock, Principal.user(admin_id), "contoso.example", False
        )
    with cli.uow() as uow, pytest.raises(PrivacyProfileRequired):
        admin.set_external_user_leave_allowed(
            uow, cli.services.clock, SYSTEM, "northwind.example", False
        )
