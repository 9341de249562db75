"""Alembic environment: the URL comes from the caller (``store.migrate``), never from a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from store.database import make_engine
from store.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            # SQLite alters a table in batch mode by copying it, dropping the original and
            # renaming the copy: with foreign keys enforced, dropping a table that rows
            # refer to fails (`seed-demo --reset` going down, or a migration of `users`
            # going up, on a database with data). They are off while migrating (set
            # outside any transaction, where the pragma takes effect) and every
            # reference is checked before the migration commits.
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        try:
            with context.begin_transaction():
                context.run_migrations()
                if sqlite:
                    _check_foreign_keys(conn)
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]
    engine.dispose()


def _check_foreign_keys(conn: Connection) -> None:
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
    if broken:
        tables = sorted({row[0] for row in broken})
        raise RuntimeError(
            f"the migration would leave rows of {', '.join(tables)} "
            "referring to rows that do not exist; nothing was changed"
        )


def run_migrations_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
