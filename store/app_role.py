"""The application's database role on PostgreSQL: what the service needs, nothing more.

The role that runs the migrations owns the tables, and an owner can do anything to
them: disable the audit log's triggers, then change or empty it. The web, worker and
scheduler processes should connect as another role, to which ``grant_app_role`` gives
exactly what the service does:

- read, insert, update and delete on every table but the audit log;
- read and insert only on ``audit_events`` (no UPDATE, DELETE or TRUNCATE: append-only
  even if the triggers were gone);
- read on ``alembic_version``, use of the id sequences, and of the schema.

Whatever the role held on these tables before is revoked first, so running it again
after a migration (new tables) grants exactly this again. A superuser, or the owner of
the tables, is refused: no grant narrows what they can do.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, text

from store.models import AuditEvent, Base

APPEND_ONLY_TABLES = (AuditEvent.__tablename__,)
MIGRATIONS_TABLE = "alembic_version"


class AppRoleRefused(ValueError):
    """The role cannot be the application's role (unknown, superuser, owner, SQLite)."""


@dataclass(frozen=True, slots=True)
class AppRoleGrants:
    role: str
    schema: str
    read_write: tuple[str, ...]
    append_only: tuple[str, ...]


def grant_app_role(connection: Connection, role: str) -> AppRoleGrants:
    """Give ``role`` what the service needs on this database (in ``connection``'s
    transaction; the caller commits). Raises ``AppRoleRefused``."""
    if connection.dialect.name != "postgresql":
        raise AppRoleRefused(
            "an application role is a PostgreSQL matter: SQLite has no roles "
            "(whoever can write the file can change it)"
        )
    found = connection.execute(
        text("SELECT rolsuper FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    if found is None:
        raise AppRoleRefused(f"no role {role!r}: create it first (CREATE ROLE ... LOGIN)")
    if found.rolsuper:
        raise AppRoleRefused(f"{role!r} is a superuser: grants cannot narrow what it may do")
    schema: str = connection.execute(text("SELECT current_schema()")).scalar_one()
    owners: set[str] = set(
        connection.execute(
            text(
                "SELECT DISTINCT tableowner FROM pg_tables "
                "WHERE schemaname = :schema AND tablename = ANY(:tables)"
            ),
            {"schema": schema, "tables": list(Base.metadata.tables)},
        ).scalars()
    )
    if role in owners:
        raise AppRoleRefused(
            f"{role!r} owns the tables (it ran the migrations): the service must connect "
            "as a role that does not, or it can disable the audit log's triggers"
        )
    quote = connection.dialect.identifier_preparer.quote
    grantee, in_schema = quote(role), quote(schema)
    append_only = tuple(t for t in Base.metadata.tables if t in APPEND_ONLY_TABLES)
    read_write = tuple(t for t in Base.metadata.tables if t not in APPEND_ONLY_TABLES)

    def tables(names: tuple[str, ...]) -> str:
        return ", ".join(f"{in_schema}.{quote(name)}" for name in names)

    every = (*read_write, *append_only, MIGRATIONS_TABLE)
    for statement in (
        f"REVOKE ALL ON {tables(every)} FROM {grantee}",
        f"GRANT USAGE ON SCHEMA {in_schema} TO {grantee}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables(read_write)} TO {grantee}",
        f"GRANT SELECT, INSERT ON {tables(append_only)} TO {grantee}",
        f"GRANT SELECT ON {tables((MIGRATIONS_TABLE,))} TO {grantee}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {in_schema} TO {grantee}",
    ):
        connection.execute(text(statement))
    return AppRoleGrants(role, schema, read_write, append_only)
