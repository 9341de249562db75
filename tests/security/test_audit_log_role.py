"""The audit log is append-only for the role the service runs as (PostgreSQL): a role
given its rights by ``lifecycle db grant-app-role`` does the service's work, and is
refused UPDATE, DELETE and TRUNCATE on ``audit_events``; TRUNCATE is refused to the
owner too (a trigger)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from cli import Services, main
from memberships import provisioning, reading, self_service
from memberships.clock import utc_now
from memberships.principal import SYSTEM, Principal
from settings import Settings
from store.database import make_engine, make_session_factory
from store.models import AuditEvent
from store.unit_of_work import UnitOfWork


@pytest.fixture
def app_role(postgresql_url: str) -> Iterator[str]:
    """A login role of its own, dropped with everything granted to it afterwards."""
    role = f"lifecycle_app_{uuid.uuid4().hex[:12]}"
    engine = make_engine(postgresql_url)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    try:
        yield role
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        engine.dispose()


def _grant(database_url: str, role: str):
    services = Services(settings=Settings(database_url=database_url))
    try:
        return CliRunner().invoke(main, ["db", "grant-app-role", role], obj=services)
    finally:
        services.close()


def _as(database_url: str, role: str) -> str:
    return make_url(database_url).set(username=role, password=None).render_as_string(False)


def test_the_app_role_does_the_services_work_and_cannot_rewrite_the_audit_log(
    postgresql_url, app_role
):
    # Given a role granted what the service needs
    result = _grant(postgresql_url, app_role)
    assert result.exit_code == 0, result.output
    assert "read and insert only on audit_events" in result.output
    engine = make_engine(_as(postgresql_url, app_role))
    factory = make_session_factory(engine)

    def uow() -> UnitOfWork:
        return UnitOfWork(factory)

    try:
        # When the service's work is done as that role: provisioning, a leave, reading
        domain = f"{uuid.uuid4().hex[:8]}.example"
        with uow() as u:
            org = provisioning.create_organization(
                u, utc_now, SYSTEM, domain, "Role Test", "p@x.example", "https://x.example/p"
            )
        with uow() as u:
            user = provisioning.create_user(u, utc_now, SYSTEM, f"guest@{domain}", "Guest", None)
        with uow() as u:
            provisioning.add_guest(u, utc_now, SYSTEM, org.id, user.id, "b2b-collaboration")
        with uow() as u:
            left = self_service.request_leave(u, utc_now, Principal.user(user.id), domain)
        assert left.state == "leave-pending"
        with uow() as u:
            page = reading.list_audit_events(u, utc_now, SYSTEM, domain)
        assert page.items
        # Then changing, deleting or emptying the audit log is refused
        for statement in (
            "UPDATE audit_events SET reason = 'x'",
            "DELETE FROM audit_events",
            "TRUNCATE audit_events",
            "ALTER TABLE audit_events DISABLE TRIGGER USER",
        ):
            with engine.connect() as conn, pytest.raises(DBAPIError) as refused:
                conn.execute(text(statement))
            message = str(refused.value.orig)
            assert "permission denied" in message or "must be owner" in message, message
    finally:
        engine.dispose()


def test_truncate_is_refused_to_the_owner_too(postgresql_url):
    engine = make_engine(postgresql_url)
    try:
        with engine.connect() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("TRUNCATE audit_events"))
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(AuditEvent)).scalar() >= 0
    finally:
        engine.dispose()


def test_the_owner_and_superusers_cannot_be_the_app_role(postgresql_url):
    owner = make_url(postgresql_url).username
    result = _grant(postgresql_url, owner)
    assert result.exit_code == 2
    assert "superuser" in result.output or "owns the tables" in result.output


def test_an_unknown_role_is_one_line(postgresql_url):
    result = _grant(postgresql_url, "no_such_role_" + uuid.uuid4().hex[:8])
    assert result.exit_code == 2
    assert "no role" in result.output
    assert "Traceback" not in result.output


def test_sqlite_has_no_app_role(sqlite_template, tmp_path):
    import shutil

    path = tmp_path / "x.db"
    shutil.copyfile(sqlite_template, path)
    result = _grant(f"sqlite:///{path}", "anyone")
    assert result.exit_code == 2
    assert "PostgreSQL" in result.output
