"""The ``lifecycle`` command: the CLI's composition point.

Every command gets its services from ``Services`` (built once per invocation
from ``Settings.from_env()``). Errors are one line on stderr and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NoReturn

import click
from sqlalchemy.exc import ArgumentError, DBAPIError

from composition import dispatcher_from, policy_from
from memberships.clock import Clock, utc_now
from memberships.errors import LifecycleError
from memberships.views import to_dict
from settings import Settings, SettingsError, without_password
from store.unit_of_work import Dispatcher, NullDispatcher, UnitOfWork


@dataclass
class Services:
    settings: Settings
    clock: Clock = utc_now
    dispatcher_factory: Callable[[Settings], Dispatcher] | None = None

    @cached_property
    def session_factory(self) -> Any:
        from store.database import make_engine, make_session_factory

        with database_file_usable(self.settings.database_url):
            engine = make_engine(self.settings.database_url)
        return make_session_factory(engine)

    @cached_property
    def dispatcher(self) -> Dispatcher:
        if self.dispatcher_factory is None:
            return NullDispatcher()
        return self.dispatcher_factory(self.settings)

    def close(self) -> None:
        """Release the database connections this invocation opened.

        Called when the command ends; the engine stays usable, so services passed in
        by a caller (tests, an embedding process) can serve the next command too.
        """
        factory = self.__dict__.get("session_factory")
        if factory is not None:
            factory.kw["bind"].dispose()

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.session_factory, self.dispatcher, policy_from(self.settings))


@contextmanager
def database_file_usable(database_url: str) -> Iterator[None]:
    """A SQLite file whose directory cannot be made is a bad ``DATABASE_URL``, not a crash."""
    try:
        yield
    except OSError as error:
        raise SettingsError(
            f"DATABASE_URL={without_password(database_url)!r}: {os_failure(error)} "
            "(the SQLite file's directory is made when missing)"
        ) from error


def os_failure(error: OSError) -> str:
    """One line naming the file an ``OSError`` is about and why it failed."""
    where = [str(name) for name in (error.filename, error.filename2) if name is not None]
    reason = error.strerror or str(error) or type(error).__name__
    return f"{' -> '.join(where)}: {reason}" if where else reason


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def emit(value: Any) -> None:
    """Print a view (or a dict/list holding views) as JSON on stdout."""
    click.echo(json.dumps(value, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return to_dict(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def services() -> Services:
    return click.get_current_context().ensure_object(Services)  # type: ignore[no-any-return]


class LifecycleGroup(click.Group):
    """Turns every expected failure into one readable line on stderr, never a traceback.

    The service's errors exit 1 (``error: <code>: <detail>``); bad usage (a missing or
    malformed option, an unknown command) and bad settings exit 2; a database that
    refuses or is not reachable exits 1 with the driver's first line, and so does a file
    that cannot be read or written (naming it).
    """

    # Subgroups (``db``, ``org``, ...) are made with this class too, so the rule holds
    # at every level.
    group_class = type

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            _usage_failure(error)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            _usage_failure(error)
        except LifecycleError as error:
            fail(f"{error.code}: {error.detail}")
        except SettingsError as error:
            fail(str(error), 2)
        except DBAPIError as error:
            fail(_database_failure(error))
        except ArgumentError as error:  # a URL or driver SQLAlchemy cannot use
            fail(f"database: {_first_line(error)}", 2)
        except BrokenPipeError:
            # The reader went away (`lifecycle timers | head`): nothing to say to it.
            # Point stdout at /dev/null so the interpreter's final flush fails quietly too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except OSError as error:
            fail(os_failure(error))


def _usage_failure(error: click.UsageError) -> NoReturn:
    """One line naming the problem and where to read more; a bare group shows its help."""
    if isinstance(error, click.exceptions.NoArgsIsHelpError):
        raise error
    message = " ".join(error.format_message().split())
    where = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
    fail(f"{message}{where}", error.exit_code)


def _first_line(error: Exception) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _database_failure(error: DBAPIError) -> str:
    lines = str(error.orig).strip().splitlines() or [type(error.orig).__name__]
    detail = lines[0]
    if "no such table" in detail or "does not exist" in detail:
        return f"database: {detail} (is the schema there? run 'lifecycle db upgrade')"
    return f"database: {detail}"


@click.group(cls=LifecycleGroup)
@click.version_option(package_name="membership-lifecycle", prog_name="lifecycle")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Membership Lifecycle Service: provisioning, inspection and operations."""
    if ctx.obj is None:
        try:
            settings = Settings.from_env()
        except SettingsError as error:
            fail(str(error), 2)
        ctx.obj = Services(settings=settings, dispatcher_factory=dispatcher_from)
    if isinstance(ctx.obj, Services):
        ctx.call_on_close(ctx.obj.close)


from cli import diagram, ops, provisioning, token  # noqa: E402,F401  (commands register on import)
