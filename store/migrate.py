"""Schema migrations (Alembic), behind ``lifecycle db upgrade|current|history|downgrade|revision``
(the ``release`` process runs ``upgrade``). The database URL always comes from the caller's
settings, never from a file, so there is no ``alembic.ini`` to keep in step."""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str, stdout: TextIO | None = None) -> Config:
    config = Config(stdout=stdout) if stdout is not None else Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    # New revisions are named like the others: 0004_what_it_does.py
    config.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    return config


def history(database_url: str, stdout: TextIO) -> None:
    """Every revision, newest first, as ``alembic history`` prints them."""
    command.history(alembic_config(database_url, stdout), indicate_current=True)


def next_revision_id(database_url: str) -> str:
    """The id after the highest numbered revision: ``0003`` → ``0004``."""
    script = ScriptDirectory.from_config(alembic_config(database_url))
    numbers = [int(r.revision) for r in script.walk_revisions() if r.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


def revision(database_url: str, message: str, autogenerate: bool) -> Path:
    """Write a new revision file into store/migrations/versions (a checkout's, in
    development); with ``autogenerate``, Alembic fills it in from the difference between
    the models and the database at ``database_url`` (which must be at head)."""
    script = command.revision(
        alembic_config(database_url),
        message=message,
        autogenerate=autogenerate,
        rev_id=next_revision_id(database_url),
    )
    assert script is not None and not isinstance(script, list)
    return Path(script.path)


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def current(database_url: str) -> str | None:
    from sqlalchemy import inspect

    from store.database import make_engine

    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    finally:
        engine.dispose()
