"""Fixtures shared by every test: a real database (SQLite, and PostgreSQL when
``TEST_DATABASE_URL`` is set), a unit of work factory, a clock tests move by hand.

Database tests run once per backend: the ``database_url`` fixture is parametrized
with ``sqlite`` and ``postgresql`` (skipped without ``TEST_DATABASE_URL``); every
``[postgresql]`` variant gets the ``postgres`` marker. Each
test gets an empty, migrated database; on PostgreSQL each test session works in
a database of its own, so concurrent runs do not meet.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from memberships.principal import SYSTEM, Principal
from store.database import make_engine, make_session_factory
from store.migrate import upgrade
from store.models import AuditEvent, Base
from store.unit_of_work import Policy, RecordingDispatcher, UnitOfWork
from tests.support.harness import scratch_database

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
# Every table of the schema, read off the models so that a new table is emptied too
# (alembic_version is not a model, so the migration state survives).
TABLES = tuple(table.name for table in reversed(Base.metadata.sorted_tables))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every variant that runs on PostgreSQL carries the ``postgres`` marker, whichever
    fixture chose the backend (``database_url`` here, the process tests' ``backend`` and
    ``stack``): ``-m postgres`` selects them all, ``-m "not postgres"`` none of them."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and any(map(_names_postgresql, callspec.params.values())):
            item.add_marker(pytest.mark.postgres)


def _names_postgresql(value: object) -> bool:
    """A backend parameter: ``"postgresql"``, or a tuple naming it (database, broker)."""
    if isinstance(value, str):
        return value == "postgresql"
    return isinstance(value, tuple) and "postgresql" in value


# Set by .ci/run: there the Graphviz tests must run, so a missing `dot` fails them.
GRAPHVIZ_REQUIRED_VARIABLE = "GRAPHVIZ_TESTS_REQUIRED"


def pytest_runtest_setup(item: pytest.Item) -> None:
    """A test marked ``graphviz`` needs Graphviz's ``dot`` and pydot: without them it is
    skipped, saying how to install them, or fails where ``GRAPHVIZ_TESTS_REQUIRED`` is set."""
    if item.get_closest_marker("graphviz") is None:
        return
    missing = [
        what
        for what, found in (
            ("Graphviz's `dot` (apt-get install graphviz)", shutil.which("dot")),
            ("pydot (make install)", importlib.util.find_spec("pydot")),
        )
        if found is None
    ]
    if not missing:
        return
    why = f"needs {' and '.join(missing)}"
    if os.environ.get(GRAPHVIZ_REQUIRED_VARIABLE, "").strip() not in ("", "0"):
        pytest.fail(f"{GRAPHVIZ_REQUIRED_VARIABLE} is set and this test {why}", pytrace=False)
    pytest.skip(why)


class FakeClock:
    """A clock that only moves when a test says so."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    if not TEST_DATABASE_URL:
        pytest.skip(
            "the [postgresql] variants need TEST_DATABASE_URL=postgresql+psycopg://USER@HOST/DB "
            "(.ci/run sets it; README, 'Running the tests')"
        )
    with scratch_database(TEST_DATABASE_URL, Path(), "lifecycle_test") as url:
        yield url


def _empty_postgresql(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        # The audit log refuses TRUNCATE (a trigger); the test server's superuser empties
        # it with triggers off for this transaction, as replication would.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database of each backend."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgresql_url")
        _empty_postgresql(url)
        return url
    template: Path = request.getfixturevalue("sqlite_template")
    path = tmp_path / "lifecycle.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def engine(database_url: str) -> Iterator[object]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def session_factory(engine: object) -> object:
    return make_session_factory(engine)  # type: ignore[arg-type]


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def policy() -> Policy:
    return Policy(removal_batch_size=50)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def uow_factory(
    session_factory: object, dispatcher: RecordingDispatcher, policy: Policy
) -> Callable[[], UnitOfWork]:
    return lambda: UnitOfWork(session_factory, dispatcher, policy)  # type: ignore[arg-type]


@dataclass
class World:
    """A small directory covering every rule: see ``world`` below."""

    uow: Callable[[], UnitOfWork]
    clock: FakeClock
    orgs: dict[str, str]
    users: dict[str, str]
    memberships: dict[tuple[str, str], str]

    def principal(self, user: str) -> Principal:
        return Principal.user(self.users[user])

    def membership(self, org: str, user: str) -> str:
        return self.memberships[(org, user)]

    def actor(self, user: str, org: str | None = None) -> str:
        """How the audit log names ``user`` acting in ``org``: a guest of ``org`` by their
        membership's pseudonym, anyone else by their id."""

        membership_id = self.memberships.get((org, user)) if org else None
        return self.users[user] if membership_id is None else self.pseudonym(membership_id)

    def pseudonym(self, membership_id: str) -> str:
        """The membership's pseudonym: the audit log's name for its member acting on it."""
        from store.models import Membership

        with self.uow() as uow:
            row = uow.session.get(Membership, membership_id)
            assert row is not None
            return row.pseudonym

    def soft_delete(self, org: str = "open", user: str = "ann", *, by: Principal = SYSTEM) -> str:
        """Remove ``user``'s guest membership of ``org`` (collaboration: soft-deleted)."""
        from memberships import admin

        membership_id = self.membership(org, user)
        with self.uow() as uow:
            admin.remove(uow, self.clock, by, self.orgs[org], membership_id)
        return membership_id

    def last_audit_id(self) -> int:
        """The newest audit row's id (0 when there is none)."""
        with self.uow() as uow:
            return max(uow.session.scalars(select(AuditEvent.id)).all(), default=0)

    def audit_after(self, last_id: int) -> list[AuditEvent]:
        """The audit rows written after ``last_id``, oldest first, detached."""
        with self.uow() as uow:
            rows = list(
                uow.session.scalars(
                    select(AuditEvent).where(AuditEvent.id > last_id).order_by(AuditEvent.id)
                )
            )
            uow.session.expunge_all()
            return rows


@pytest.fixture
def world(uow_factory: Callable[[], UnitOfWork], clock: FakeClock) -> World:
    """Organizations ``open`` (privacy profile, leave allowed), ``closed`` (privacy profile,
    leave disallowed), ``bare`` (no privacy profile) and ``home``; users ``ann`` (home:
    home; collaboration guest of open, closed and bare, with two grants and 120 data rows in
    open), ``pat`` (personal account, no home; direct-connect guest of open with 30 data
    rows), ``dis`` (disabled guest of open), ``off`` (account disabled at home; guest of
    open), admins ``gadmin`` (global administrator of open), ``idpadmin`` (external identity
    provider administrator of open), ``cadmin`` (global administrator of closed), ``bareadmin``
    (of bare), and ``ops`` (platform operator)."""
    from memberships import provisioning as p

    def run(call: Callable[[UnitOfWork], object]) -> object:
        with uow_factory() as uow:
            return call(uow)

    orgs = {}
    for key, domain, email, url, allowed in [
        ("open", "open.example", "privacy@open.example", "https://open.example/privacy", True),
        ("closed", "closed.example", "privacy@closed.example", "https://closed.example/p", False),
        ("bare", "bare.example", None, None, True),
        ("home", "home.example", None, None, True),
    ]:
        orgs[key] = run(
            lambda u, a=(domain, email, url, allowed): p.create_organization(
                u,
                clock,
                SYSTEM,
                a[0],
                a[0].split(".")[0].title(),
                a[1],
                a[2],
                external_user_leave_allowed=a[3],
            )
        ).id  # type: ignore[attr-defined]
    users = {}
    for key, home, enabled in [
        ("ann", "home.example", True),
        ("pat", None, True),
        ("dis", "home.example", True),
        ("off", "home.example", False),
        ("gadmin", "open.example", True),
        ("idpadmin", "open.example", True),
        ("cadmin", "closed.example", True),
        ("bareadmin", "bare.example", True),
        ("ops", "home.example", True),
    ]:
        users[key] = run(
            lambda u, a=(key, home, enabled): p.create_user(
                u, clock, SYSTEM, f"{a[0]}@mail.example", a[0].title(), a[1], enabled=a[2]
            )
        ).id  # type: ignore[attr-defined]
    memberships = {}
    for org, user, kind, enabled in [
        ("open", "ann", "b2b-collaboration", True),
        ("closed", "ann", "b2b-collaboration", True),
        ("bare", "ann", "b2b-collaboration", True),
        ("open", "pat", "b2b-direct-connect", True),
        ("open", "dis", "b2b-collaboration", False),
        ("open", "off", "b2b-collaboration", True),
    ]:
        memberships[(org, user)] = run(
            lambda u, a=(org, user, kind, enabled): p.add_guest(
                u, clock, SYSTEM, orgs[a[0]], users[a[1]], a[2], enabled=a[3]
            )
        ).id  # type: ignore[attr-defined]
    run(lambda u: p.add_grant(u, clock, SYSTEM, orgs["open"], users["ann"], "group", "Sales"))
    run(lambda u: p.add_grant(u, clock, SYSTEM, orgs["open"], users["ann"], "app-role", "Reader"))
    run(lambda u: p.add_member_data(u, clock, SYSTEM, orgs["open"], users["ann"], 120))
    run(lambda u: p.add_member_data(u, clock, SYSTEM, orgs["open"], users["pat"], 30))
    for org, user, role in [
        ("open", "gadmin", "global-administrator"),
        ("open", "idpadmin", "external-identity-provider-administrator"),
        ("closed", "cadmin", "global-administrator"),
        ("bare", "bareadmin", "global-administrator"),
        (None, "ops", "operator"),
    ]:
        run(
            lambda u, a=(org, user, role): p.grant_role(
                u, clock, SYSTEM, users[a[1]], a[2], orgs[a[0]] if a[0] else None
            )
        )
    return World(uow_factory, clock, orgs, users, memberships)
