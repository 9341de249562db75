"""``lifecycle seed-demo``, ``lifecycle diagram`` and ``lifecycle db upgrade``, in process;
and what every command does with bad settings or a database without its schema."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, inspect, select

from cli import Services, main
from memberships import admin, automatic, reading, self_service
from memberships.errors import PrivacyProfileRequired
from memberships.principal import SYSTEM, Principal
from memberships.removal import remove_all_data
from settings import Settings
from statemachines import docs
from store.database import make_engine
from store.models import Base, Membership

if TYPE_CHECKING:  # at run time, "conftest" may name another directory's conftest module
    from conftest import FakeClock


def _invoke(services: Services | None, *args: str, **kwargs: Any) -> Result:
    return CliRunner().invoke(main, list(args), obj=services, **kwargs)


def _one_line_error(result: Result, exit_code: int) -> str:
    assert result.exit_code == exit_code, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    return line


@pytest.fixture
def services(database_url: str, clock: FakeClock) -> Iterator[Services]:
    made = Services(settings=Settings(database_url=database_url), clock=clock)
    yield made
    if "session_factory" in made.__dict__:
        made.session_factory.kw["bind"].dispose()


# --- seed-demo -----------------------------------------------------------------------------


def _row_counts(services: Services) -> dict[str, int]:
    with services.uow() as uow:
        return {
            name: uow.session.scalar(select(func.count()).select_from(table)) or 0
            for name, table in Base.metadata.tables.items()
        }


def _user_id(services: Services, email: str) -> str:
    with services.uow() as uow:
        user = uow.directory.find_user(email)
        assert user is not None, email
        return user.id


def _organizations_of(services: Services, email: str) -> list[tuple[str, bool, str | None, str]]:
    member = Principal.user(_user_id(services, email))
    with services.uow() as uow:
        return [
            (e.organization.domain, e.is_home, e.leave_blocked_reason, e.membership.kind)
            for e in self_service.list_organizations(uow, member)
        ]


def _roles(services: Services, email: str, domain: str | None) -> set[str]:
    with services.uow() as uow:
        user = uow.directory.find_user(email)
        org = uow.directory.find_organization(domain) if domain else None
        assert user is not None and (org is not None or domain is None)
        return uow.directory.roles_of(user.id, org.id if org else None)


def test_seed_demo_covers_every_situation_and_can_run_twice(services: Services) -> None:
    # Given an empty database
    # When the demo is seeded twice
    first = _invoke(services, "seed-demo")
    counts = _row_counts(services)
    second = _invoke(services, "seed-demo")
    # Then the second run makes nothing new
    assert first.exit_code == 0 and second.exit_code == 0, (first.stderr, second.stderr)
    made = re.search(r"demo: (\d+) objects created", first.stderr)
    assert made is not None and int(made.group(1)) > 20
    assert "demo: 0 objects created" in second.stderr
    assert _row_counts(services) == counts
    # And every situation of the rules is there: a work account with a home organization
    # first, an organization that lets guests leave, one that does not, one without a
    # privacy profile
    assert _organizations_of(services, "alice@woodgrove.example") == [
        ("woodgrove.example", True, "home-organization", "home"),
        ("contoso.example", False, None, "b2b-collaboration"),
        ("fabrikam.example", False, "leave-disabled", "b2b-collaboration"),
        ("northwind.example", False, None, "b2b-collaboration"),
    ]
    # a personal account without a home, a collaboration and a direct-connect guest
    assert _organizations_of(services, "bob@personal.example") == [
        ("contoso.example", False, None, "b2b-collaboration"),
        ("northwind.example", False, None, "b2b-direct-connect"),
    ]
    assert _organizations_of(services, "dan@personal.example") == [
        ("contoso.example", False, None, "b2b-direct-connect"),
    ]
    # a guest disabled in the organization, and one whose account is disabled at home
    assert ("contoso.example", False, "account-disabled", "b2b-collaboration") in (
        _organizations_of(services, "carol@woodgrove.example")
    )
    assert ("contoso.example", False, "account-disabled", "b2b-collaboration") in (
        _organizations_of(services, "erin@woodgrove.example")
    )
    # the privacy contacts a refused leave shows
    with services.uow() as uow:
        contoso = reading.get_organization(uow, services.clock, SYSTEM, "contoso.example")
        northwind = reading.get_organization(uow, services.clock, SYSTEM, "northwind.example")
    assert contoso.has_privacy_profile and not northwind.has_privacy_profile
    # admins with each role, and the platform operator
    roles = {
        (email, domain): _roles(services, email, domain)
        for email, domain in [
            ("admin@contoso.example", "contoso.example"),
            ("idp-admin@fabrikam.example", "fabrikam.example"),
            ("admin@northwind.example", "northwind.example"),
            ("ops@woodgrove.example", None),
        ]
    }
    assert roles == {
        ("admin@contoso.example", "contoso.example"): {"global-administrator"},
        ("idp-admin@fabrikam.example", "fabrikam.example"): {
            "external-identity-provider-administrator"
        },
        ("admin@northwind.example", "northwind.example"): {"global-administrator"},
        ("ops@woodgrove.example", None): {"operator"},
    }
    # grants and data that a removal erases
    with services.uow() as uow:
        shown = reading.show_membership(
            uow, services.clock, SYSTEM, "contoso.example", "alice@woodgrove.example"
        )
    assert {g.name for g in shown["membership"].grants} == {"Sales", "Expenses.Reader"}
    assert shown["member_data_rows"] == 25
    # and northwind's admin cannot change the leave setting without a privacy profile
    northwind_admin = Principal.user(_user_id(services, "admin@northwind.example"))
    with services.uow() as uow, pytest.raises(PrivacyProfileRequired):
        admin.set_external_user_leave_allowed(
            uow, services.clock, northwind_admin, "northwind.example", False
        )


def _move_alice_out_of_contoso(services: Services, clock: FakeClock, state: str) -> str:
    """Take alice's demo membership in contoso to ``state`` the way the service does:
    she leaves, the worker carries it out, an admin restores it or deletes it
    permanently, the data removal finishes. Returns the membership's id."""
    alice = Principal.user(_user_id(services, "alice@woodgrove.example"))
    with services.uow() as uow:
        membership_id = self_service.request_leave(uow, clock, alice, "contoso.example").id
    steps = {
        "soft-deleted": lambda uow: automatic.complete_leave(uow, clock, membership_id),
        "restored": lambda uow: admin.restore(uow, clock, SYSTEM, "contoso.example", membership_id),
        "purge-pending": lambda uow: admin.purge(
            uow, clock, SYSTEM, "contoso.example", membership_id
        ),
        "purged": lambda uow: remove_all_data(uow, clock, membership_id),
    }
    path = {
        "leave-pending": [],
        "soft-deleted": ["soft-deleted"],
        "restored": ["soft-deleted", "restored"],
        "purge-pending": ["soft-deleted", "purge-pending"],
        "purged": ["soft-deleted", "purge-pending", "purged"],
    }[state]
    for step in path:
        clock.advance(timedelta(minutes=1))
        with services.uow() as uow:
            steps[step](uow)
    assert _membership_states(services, "alice@woodgrove.example", "contoso.example") == [state]
    return membership_id


def _membership_states(services: Services, email: str, domain: str) -> list[str]:
    """The states of every membership (tombstones too) of the user in the organization."""
    with services.uow() as uow:
        user = uow.directory.find_user(email)
        org = uow.directory.find_organization(domain)
        assert user is not None and org is not None
        return list(
            uow.session.scalars(
                select(Membership.state).where(
                    Membership.user_id == user.id, Membership.organization_id == org.id
                )
            )
        )


# (A purged membership is not here: its tombstone no longer names alice, so a new seed
# provisions her again, as an operator would.)
@pytest.mark.parametrize("state", ["leave-pending", "soft-deleted", "restored", "purge-pending"])
def test_seed_demo_runs_again_after_a_demo_member_has_left(
    services: Services, clock: FakeClock, state: str
) -> None:
    # Given the demo, and alice's membership in contoso taken on through its lifecycle
    assert _invoke(services, "seed-demo").exit_code == 0
    membership_id = _move_alice_out_of_contoso(services, clock, state)
    counts = _row_counts(services)
    with services.uow() as uow:
        before = reading.show_membership(
            uow, clock, SYSTEM, "contoso.example", "alice@woodgrove.example"
        )
    # When the demo is seeded again (a second `make run`)
    result = _invoke(services, "seed-demo")
    # Then it succeeds and makes nothing: her membership is left as it is (not
    # resurrected, re-granted or given data again) and nothing else is added
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert "Traceback" not in result.stderr
    assert _row_counts(services) == counts
    assert _membership_states(services, "alice@woodgrove.example", "contoso.example") == [state]
    with services.uow() as uow:
        after = reading.show_membership(
            uow, clock, SYSTEM, "contoso.example", "alice@woodgrove.example"
        )
    assert after["membership"].id == membership_id
    assert after == before
    # And it says briefly what was already there, and which membership it left alone
    lines = result.stderr.splitlines()
    assert lines[0].startswith("demo: 0 objects created; already there: 4 organizations, 9 users")
    assert lines[1:] == [
        f"demo: alice@woodgrove.example in contoso.example is {state}: left as it is"
    ]


def test_seed_demo_reset_puts_the_walkthrough_back_as_new(
    services: Services, clock: FakeClock
) -> None:
    # Given the demo after the walkthrough: alice purged from contoso
    assert _invoke(services, "seed-demo").exit_code == 0
    fresh = _row_counts(services)
    membership_id = _move_alice_out_of_contoso(services, clock, "purge-pending")
    with services.uow() as uow:
        remove_all_data(uow, clock, membership_id)
    assert _membership_states(services, "alice@woodgrove.example", "contoso.example") == []
    # When the demo is reset (`make reset`)
    result = _invoke(services, "seed-demo", "--reset")
    # Then it says so, and everything is as after a first seed: alice is a guest of
    # contoso again, whom nothing stops from leaving (the README's next step)
    assert result.exit_code == 0, (result.stderr, result.exception)
    assert result.stderr.splitlines()[0] == "demo: the database is emptied; seeding the demo as new"
    assert _row_counts(services) == fresh
    assert _membership_states(services, "alice@woodgrove.example", "contoso.example") == ["active"]
    contoso = [
        o
        for o in _organizations_of(services, "alice@woodgrove.example")
        if o[0] == "contoso.example"
    ]
    assert [(domain, blocked) for domain, _, blocked, _ in contoso] == [("contoso.example", None)]


def test_seed_demo_reset_refuses_a_database_that_is_not_only_the_demo(
    services: Services,
) -> None:
    # Given the demo and an organization of someone else's
    assert _invoke(services, "seed-demo").exit_code == 0
    acme = _invoke(services, "org", "create", "--domain", "acme.example", "--name", "Acme")
    assert acme.exit_code == 0, acme.stderr
    counts = _row_counts(services)
    # When the demo is reset
    result = _invoke(services, "seed-demo", "--reset")
    # Then it refuses in one line naming the organization, and erases nothing
    line = _one_line_error(result, 1)
    assert "acme.example" in line and "only runs on a demo database" in line
    assert _row_counts(services) == counts


# --- diagram -------------------------------------------------------------------------------

NO_DATABASE = Services(settings=Settings(database_url="sqlite:///unused-by-diagrams.db"))

DESIGN_TRANSITIONS = {
    ("active", "leave_pending"),
    ("restored", "leave_pending"),
    ("leave_pending", "soft_deleted"),
    ("leave_pending", "purge_pending"),
    ("active", "soft_deleted"),
    ("active", "purge_pending"),
    ("restored", "soft_deleted"),
    ("restored", "purge_pending"),
    ("soft_deleted", "restored"),
    ("soft_deleted", "purge_pending"),
    ("purge_pending", "purged"),
}


def test_diagram_prints_the_six_state_mermaid_diagram() -> None:
    # When the Mermaid diagram is asked for
    result = _invoke(NO_DATABASE, "diagram", "--format", "mermaid")
    # Then it is a state diagram of exactly the six states and the design's transitions
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith("stateDiagram-v2")
    states = set(re.findall(r'^\s*state "[^"]+" as (\w+)$', text, re.M))
    assert states == {
        "active",
        "leave_pending",
        "soft_deleted",
        "restored",
        "purge_pending",
        "purged",
    }
    arrows = set(re.findall(r"^\s*(\w+) --> (\w+) :", text, re.M))
    assert arrows == DESIGN_TRANSITIONS
    assert "[*] --> active" in text and "purged --> [*]" in text


def test_diagram_md_is_the_generated_docs_page() -> None:
    result = _invoke(NO_DATABASE, "diagram", "--format", "md")
    assert result.exit_code == 0
    assert result.stdout == docs.lifecycle_markdown()
    assert "```mermaid" in result.stdout


def test_diagram_writes_to_a_file(tmp_path: Path) -> None:
    # When the diagram is written to a file in a directory that does not exist yet
    target = tmp_path / "out" / "lifecycle.mmd"
    result = _invoke(NO_DATABASE, "diagram", "--format", "mermaid", "-o", str(target))
    # Then the file holds it, and stdout stays empty
    assert result.exit_code == 0, result.stderr
    assert target.read_text().startswith("stateDiagram-v2")
    assert result.stdout == ""
    assert f"wrote {target}" in result.stderr


@pytest.mark.graphviz
def test_diagram_svg_is_rendered_where_graphviz_is_installed() -> None:
    result = _invoke(NO_DATABASE, "diagram", "--format", "svg")
    assert result.exit_code == 0, result.stderr
    assert "<svg" in result.stdout
    assert "Soft deleted" in result.stdout


def test_diagram_svg_without_graphviz_is_a_clear_one_line_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a machine without Graphviz's dot
    monkeypatch.setattr(docs.shutil, "which", lambda _name: None)
    # When an SVG is asked for, Then one line says what to install and what to use instead
    line = _one_line_error(_invoke(NO_DATABASE, "diagram", "--format", "svg"), 1)
    assert "Graphviz is not installed" in line
    assert "--format mermaid" in line


def test_diagram_to_a_file_that_cannot_be_written_is_one_line_naming_it(tmp_path: Path) -> None:
    # Given an output path under a regular file, where no directory can be made
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    target = blocker / "lifecycle.md"
    # When the diagram is written there
    result = _invoke(NO_DATABASE, "diagram", "--format", "md", "-o", str(target))
    # Then one line names the path and why, and the exit status is 1
    line = _one_line_error(result, 1)
    assert line.startswith(f"error: cannot write {target}: ")
    assert str(blocker) in line
    assert result.stdout == ""


def test_an_unexpected_os_error_is_one_line_naming_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a command that meets an OSError none of its own code expects
    def broken() -> str:
        raise PermissionError(13, "Permission denied", "/usr/bin/dot")

    monkeypatch.setattr(docs, "svg", broken)
    monkeypatch.setattr(docs.shutil, "which", lambda _name: "/usr/bin/dot")
    # When it runs, Then the group turns it into one line naming the file
    line = _one_line_error(_invoke(NO_DATABASE, "diagram", "--format", "svg"), 1)
    assert line == "error: /usr/bin/dot: Permission denied"


def test_diagram_refuses_an_unknown_format() -> None:
    line = _one_line_error(_invoke(NO_DATABASE, "diagram", "--format", "png"), 2)
    assert "Invalid value for '--format'" in line


# --- db upgrade, settings, a database without its schema -----------------------------------


def test_db_upgrade_builds_a_fresh_sqlite_database(tmp_path: Path) -> None:
    # Given a path where no database exists yet (nor its directory)
    url = f"sqlite:///{tmp_path / 'var' / 'fresh.db'}"
    services = Services(settings=Settings(database_url=url))
    # When the schema is upgraded, twice
    first = _invoke(services, "db", "upgrade")
    second = _invoke(services, "db", "upgrade")
    # Then every table exists and both runs report the head revision
    assert first.exit_code == 0 and second.exit_code == 0, (first.stderr, second.stderr)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
    finally:
        engine.dispose()
    assert set(Base.metadata.tables) <= tables
    assert re.search(r"database at revision \w+", first.stderr)
    assert first.stderr == second.stderr


def test_a_command_on_a_database_without_its_schema_says_to_upgrade(tmp_path: Path) -> None:
    services = Services(settings=Settings(database_url=f"sqlite:///{tmp_path / 'empty.db'}"))
    result = _invoke(services, "org", "create", "--domain", "a.example", "--name", "A")
    line = _one_line_error(result, 1)
    assert "lifecycle db upgrade" in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("RETENTION_PERIOD", "soon"),
        ("DATABASE_URL", "lifecycle.db"),
        ("DATABASE_URL", "foo://bar"),
        ("DATABASE_URL", "postgresql+psycopg2://db.example/lifecycle"),
        ("SWEEP_INTERVAL", "0s"),
        ("RATE_LIMIT", "1 per hourz"),
    ],
)
def test_bad_settings_stop_every_command_with_a_line_naming_the_variable(
    variable: str, value: str
) -> None:
    # Given a malformed variable in the environment, When any command runs without
    # prepared services, Then it stops at once naming the variable
    result = _invoke(None, "diagram", env={variable: value})
    line = _one_line_error(result, 2)
    assert variable in line


@pytest.mark.parametrize("command", [("timers",), ("db", "upgrade")])
def test_a_sqlite_file_whose_directory_cannot_be_made_is_a_bad_database_url(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    # Given DATABASE_URL naming a SQLite file under a regular file
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    url = f"sqlite:///{blocker / 'lifecycle.db'}"
    services = Services(settings=Settings(database_url=url))
    # When a command opens the database, Then one line names DATABASE_URL and the path
    line = _one_line_error(_invoke(services, *command), 2)
    assert line.startswith(f"error: DATABASE_URL={url!r}: {blocker}: ")


def test_db_upgrade_to_an_unknown_revision_is_one_line(tmp_path: Path) -> None:
    services = Services(settings=Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    line = _one_line_error(_invoke(services, "db", "upgrade", "--revision", "nope"), 2)
    assert "Invalid value for '--revision'" in line and "'nope'" in line


def test_a_reader_that_goes_away_gets_no_error_message(tmp_path: Path) -> None:
    # Given a pipe whose reader has already gone (`lifecycle diagram | head -1`, once
    # head has its line)
    read_end, write_end = os.pipe()
    os.close(read_end)
    # When the command writes its output into it
    lifecycle = Path(sys.executable).parent / "lifecycle"
    try:
        finished = subprocess.run(
            [str(lifecycle), "diagram", "--format", "md"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
            cwd=tmp_path,
        )
    finally:
        os.close(write_end)
    # Then it stops with a failure status and says nothing: there is no one to tell
    assert finished.returncode == 1
    assert finished.stderr == ""
