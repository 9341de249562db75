"""What the database itself guarantees, on SQLite and PostgreSQL: an append-only audit
log, CHECK constraints on stored values, one live membership per user and organization,
compare-and-set, and a unit of work that commits only when told to."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from memberships import provisioning
from memberships.clock import Clock
from memberships.principal import SYSTEM
from store import transitions
from store.database import make_engine
from store.migrate import alembic_config, current, downgrade, upgrade
from store.models import AuditEvent, Base, Membership, Organization
from store.queries import AuditLog
from store.unit_of_work import UnitOfWork


@dataclass
class World:
    """The slice of the shared ``world`` fixture's interface these tests use."""

    uow: Callable[[], UnitOfWork]
    clock: Clock
    orgs: dict[str, str]
    users: dict[str, str]
    memberships: dict[tuple[str, str], str]

    def membership(self, org: str, user: str) -> str:
        return self.memberships[(org, user)]


@pytest.fixture
def world(uow_factory: Callable[[], UnitOfWork], clock: Clock) -> World:
    """Just what the store's guarantees need, so these tests stay fast: the organization
    ``open``, and ``ann``, a collaboration guest of it with one grant (which leaves a few
    audit entries)."""
    with uow_factory() as uow:
        org = provisioning.create_organization(uow, clock, SYSTEM, "open.example", "Open")
    with uow_factory() as uow:
        ann = provisioning.create_user(uow, clock, SYSTEM, "ann@mail.example", "Ann")
    with uow_factory() as uow:
        membership = provisioning.add_guest(uow, clock, SYSTEM, org.id, ann.id, "b2b-collaboration")
    with uow_factory() as uow:
        provisioning.add_grant(uow, clock, SYSTEM, org.id, ann.id, "group", "Sales")
    return World(
        uow_factory, clock, {"open": org.id}, {"ann": ann.id}, {("open", "ann"): membership.id}
    )


def _execute(engine: Engine, statement: str, **params: object) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement), params)


# --- the audit log is append-only ----------------------------------------------------------


AUDIT_REWRITES = [
    "UPDATE audit_events SET reason = 'rewritten'",
    "UPDATE audit_events SET actor = 'someone-else' WHERE id = (SELECT MIN(id) FROM audit_events)",
    "DELETE FROM audit_events",
    "DELETE FROM audit_events WHERE id = (SELECT MIN(id) FROM audit_events)",
]


def _audit_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text("SELECT id, actor, reason FROM audit_events ORDER BY id")))


def test_the_audit_log_refuses_updates_and_deletes(world: World, engine: Engine) -> None:
    # Given an audit log with entries
    before = _audit_rows(engine)
    assert before
    for statement in AUDIT_REWRITES:
        # When anyone tries to change or delete an entry, Then the database refuses
        with pytest.raises(DBAPIError, match="append-only"):
            _execute(engine, statement)
    # And every entry is as it was
    assert _audit_rows(engine) == before


def test_the_audit_log_accepts_new_entries(world: World, engine: Engine) -> None:
    # Given the audit log, When a new entry is appended through the store
    with Session(engine) as session, session.begin():
        AuditLog(session).append(
            occurred_at=world.clock(),
            actor="system",
            action="check",
            organization_id=world.orgs["open"],
        )
    # Then it is kept
    with Session(engine) as session:
        assert session.scalar(select(AuditEvent).where(AuditEvent.action == "check"))


# --- CHECK constraints ---------------------------------------------------------------------

SET_STATE = "UPDATE memberships SET state = :s WHERE id = :id"


def _state(engine: Engine, membership_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT state FROM memberships WHERE id = :id"), {"id": membership_id}
        ).scalar()


def test_the_state_check_constraint_refuses_an_unknown_state(world: World, engine: Engine) -> None:
    # Given a stored membership
    membership_id = world.membership("open", "ann")
    for bad_state in ("deleted", "soft_deleted", "ACTIVE", ""):
        # When its state is set to a value that is not one of the six, Then it is refused
        with pytest.raises(IntegrityError):
            _execute(engine, SET_STATE, s=bad_state, id=membership_id)
    assert _state(engine, membership_id) == "active"


def test_every_lifecycle_state_is_accepted_by_the_check_constraint(
    world: World, engine: Engine
) -> None:
    # Given a stored membership, When it takes each of the six stored values, Then each is kept
    membership_id = world.membership("open", "ann")
    for state in ("active", "leave-pending", "soft-deleted", "restored", "purge-pending", "purged"):
        _execute(engine, SET_STATE, s=state, id=membership_id)
        assert _state(engine, membership_id) == state


ROLE_ROW = (
    "INSERT INTO role_assignments (id, user_id, organization_id, role, created_at) "
    "VALUES (:id, :user, {org}, :role, :now)"
)
OUT_OF_DOMAIN = {
    "membership kind": "UPDATE memberships SET kind = 'b2b' WHERE id = :membership",
    "grant kind": "UPDATE grants SET kind = 'license'",
    "audit outcome": "INSERT INTO audit_events (occurred_at, actor, action, outcome) "
    "VALUES (:now, 'system', 'check', 'maybe')",
    "unknown role": ROLE_ROW.format(org=":org").replace(":role", "'owner'"),
    "operator in an organization": ROLE_ROW.format(org=":org").replace(":role", "'operator'"),
    "admin role without organization": ROLE_ROW.format(org="NULL").replace(
        ":role", "'global-administrator'"
    ),
}


def test_stored_values_outside_their_domain_are_refused(world: World, engine: Engine) -> None:
    # Given the rows' ids
    values = {
        "membership": world.membership("open", "ann"),
        "user": world.users["ann"],
        "org": world.orgs["open"],
        "now": world.clock(),
        "id": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
    }
    for what, statement in OUT_OF_DOMAIN.items():
        needed = {k: v for k, v in values.items() if f":{k}" in statement}
        # When a value outside its allowed set is written, Then the database refuses it
        with pytest.raises(DBAPIError):
            _execute(engine, statement, **needed)
            pytest.fail(f"accepted: {what}")


# --- one live membership per user and organization -----------------------------------------


def test_a_user_has_at_most_one_live_membership_per_organization(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    # Given ann's live membership in open
    # When a second live membership is stored for the same pair, Then it is refused
    with session_factory() as session, pytest.raises(IntegrityError):
        session.add(
            Membership(
                user_id=world.users["ann"],
                organization_id=world.orgs["open"],
                kind="b2b-collaboration",
                created_at=world.clock(),
            )
        )
        session.commit()


# --- compare-and-set -----------------------------------------------------------------------


def test_compare_and_set_refuses_a_row_changed_since_it_was_read(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    # Given a decision that read the membership at version 1
    membership_id = world.membership("open", "ann")
    with session_factory() as reader:
        theirs = reader.get(Membership, membership_id)
        assert theirs is not None and theirs.version == 1
        reader.expunge(theirs)  # keep what was read, as a slow request would
    # When another decision changes it first
    with session_factory() as first:
        mine = first.get(Membership, membership_id)
        assert mine is not None
        assert transitions.compare_and_set(first, mine, "soft-deleted")
        first.commit()
        assert (mine.state, mine.version) == ("soft-deleted", 2)
    # Then the change based on the old read is refused and the row keeps the winner's values
    with session_factory() as second:
        second.add(theirs)
        assert transitions.compare_and_set(second, theirs, "leave-pending") is False
        second.commit()
    with session_factory() as session:
        row = session.get(Membership, membership_id)
        assert row is not None and (row.state, row.version) == ("soft-deleted", 2)


# --- the unit of work ----------------------------------------------------------------------


def _rename_open(uow: UnitOfWork, world: World, name: str) -> None:
    org = uow.session.get(Organization, world.orgs["open"])
    assert org is not None
    org.display_name = name


def _name_of_open(world: World) -> str:
    with world.uow() as uow:
        org = uow.session.get(Organization, world.orgs["open"])
        assert org is not None
        return org.display_name


def test_the_unit_of_work_rolls_back_unless_told_to_commit(world: World) -> None:
    # Given a change made in a unit of work, and callbacks waiting for the commit
    ran: list[str] = []
    with world.uow() as uow:
        _rename_open(uow, world, "Renamed")
        uow.on_commit(lambda: ran.append("sent"))
        uow.session.flush()
    # When it ends without commit, Then nothing was stored and no callback ran
    assert _name_of_open(world) == "Open"
    assert ran == []


def test_an_error_inside_the_unit_of_work_rolls_it_back(world: World) -> None:
    # Given a unit of work that fails after a change
    with pytest.raises(ZeroDivisionError), world.uow() as uow:
        _rename_open(uow, world, "Renamed")
        uow.session.flush()
        _ = 1 / 0
    # Then the change is gone
    assert _name_of_open(world) == "Open"


def test_on_commit_callbacks_run_only_after_the_commit(world: World) -> None:
    # Given a callback that reads the database from another connection
    seen: list[str] = []
    with world.uow() as uow:
        _rename_open(uow, world, "Committed")
        uow.on_commit(lambda: seen.append(_name_of_open(world)))
        # When the unit of work commits
        assert seen == []
        uow.commit()
    # Then the callback ran once, and saw the committed change
    assert seen == ["Committed"]


def test_a_failing_callback_does_not_undo_the_commit(world: World) -> None:
    # Given a callback that fails (a lost broker message)
    def lost() -> None:
        raise ConnectionError("broker unreachable")

    with world.uow() as uow:
        _rename_open(uow, world, "Kept")
        uow.on_commit(lost)
        uow.commit()
    # Then the commit stands: the sweep re-drives lost work from the database
    assert _name_of_open(world) == "Kept"


# --- time ----------------------------------------------------------------------------------


def test_timestamps_come_back_as_the_same_aware_utc_instant(
    world: World, session_factory: sessionmaker[Session]
) -> None:
    # Given a due time written with a non-UTC offset
    from datetime import timezone

    membership_id = world.membership("open", "ann")
    moment = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=5)))
    with session_factory() as session:
        row = session.get(Membership, membership_id)
        assert row is not None
        row.purge_due_at = moment
        session.commit()
    # When it is read back, Then it is the same instant, in UTC
    with session_factory() as session:
        row = session.get(Membership, membership_id)
        assert row is not None
        assert row.purge_due_at == moment
        assert row.purge_due_at.tzinfo == UTC


def test_a_naive_timestamp_is_refused(world: World, session_factory: sessionmaker[Session]) -> None:
    # Given a datetime without a zone, When it is stored, Then it is refused (ambiguous)
    membership_id = world.membership("open", "ann")
    with session_factory() as session:
        row = session.get(Membership, membership_id)
        assert row is not None
        row.purge_due_at = datetime(2026, 3, 1, 12, 30)
        with pytest.raises(Exception, match="naive"):
            session.commit()


# --- migrations ----------------------------------------------------------------------------


def _head(url: str) -> str | None:
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def test_migrations_build_downgrade_and_rebuild_the_schema(tmp_path: Path) -> None:
    # Given a fresh SQLite file
    url = f"sqlite:///{tmp_path / 'fresh.db'}"

    def tables() -> set[str]:
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                return set(inspect(conn).get_table_names()) - {"alembic_version"}
        finally:
            engine.dispose()

    # When it is upgraded, Then every table of the models exists at the head revision
    upgrade(url)
    assert tables() == set(Base.metadata.tables)
    assert current(url) == _head(url)
    # When it is downgraded to nothing and upgraded again, Then the schema comes back
    downgrade(url, "base")
    assert tables() == set()
    upgrade(url)
    assert tables() == set(Base.metadata.tables)


def test_the_migrated_schema_matches_the_models(engine: Engine) -> None:
    # Given a database built by the migrations alone
    # When it is compared with the models, Then there is nothing left to migrate
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
