"""The ``lifecycle`` command: the CLI's composition point.

Every command gets its services from ``Services`` (built once per invocation
from ``Settings.from_env()``). Errors are one line on stderr and a non-zero exit,
never a traceback. JSON output uses camelCase names, like the HTTP API.

Start-up time: a command imports what it uses when it runs, not when the CLI
loads, so ``lifecycle --help`` and ``lifecycle token`` never pay for SQLAlchemy's
ORM, the web app or the workers (``bench/cli_startup.py`` measures it).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import re
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NoReturn

import click

from memberships.clock import Clock, utc_now
from memberships.errors import LifecycleError
from settings import Settings, SettingsError, without_password

if TYPE_CHECKING:
    from sqlalchemy.exc import DBAPIError

    from store.unit_of_work import Dispatcher, UnitOfWork


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
            from store.unit_of_work import NullDispatcher

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
        from composition import policy_from
        from store.unit_of_work import UnitOfWork

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


class LazyModule(types.ModuleType):
    """A module imported on first use: ``provisioning = LazyModule("memberships.provisioning")``
    costs nothing until a command calls ``provisioning.add_guest``. Modules that use one
    import the real module under ``TYPE_CHECKING`` too, so the type checker sees it."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__dict__["_lazy_target"] = name

    def __getattr__(self, attribute: str) -> Any:
        module = importlib.import_module(self.__dict__["_lazy_target"])
        return getattr(module, attribute)


def fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def emit(value: Any) -> None:
    """Print a view (or a dict/list holding views) as JSON on stdout, with camelCase
    names as the HTTP API has them (``membership_id`` → ``membershipId``)."""
    click.echo(json.dumps(camel_case(value), indent=2, default=_json_default))


_SNAKE = re.compile(r"_([a-z0-9])")


def camel_case(value: Any, field_names: bool = True) -> Any:
    """``value`` with its field names in camelCase, as Pydantic's aliases give them on
    the API: a view's fields and the keys of the records a command builds. A mapping held
    in a view's field keeps its keys (they are data: states, event names)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            _camel(f.name): camel_case(getattr(value, f.name), field_names=False)
            for f in dataclasses.fields(value)
        }
    if isinstance(value, dict):
        return {
            (_camel(k) if field_names else k): camel_case(v, field_names) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [camel_case(v, field_names) for v in value]
    return value


def _camel(key: Any) -> Any:
    return _SNAKE.sub(lambda m: m.group(1).upper(), key) if isinstance(key, str) else key


def _json_default(value: Any) -> Any:
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
        except BrokenPipeError:
            # The reader went away (`lifecycle timers | head`): nothing to say to it.
            # Point stdout at /dev/null so the interpreter's final flush fails quietly too.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except OSError as error:
            fail(os_failure(error))
        except Exception as error:
            _database_error(error)
            raise


def _database_error(error: Exception) -> None:
    """Fail with one line if ``error`` is SQLAlchemy's; return otherwise. SQLAlchemy is
    looked at only when a command loaded it: then, and only then, can it have raised."""
    if "sqlalchemy" not in sys.modules:
        return
    from sqlalchemy.exc import ArgumentError, DBAPIError

    if isinstance(error, DBAPIError):
        fail(_database_failure(error))
    if isinstance(error, ArgumentError):  # a URL or driver SQLAlchemy cannot use
        fail(f"database: {_first_line(error)}", 2)


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
        ctx.obj = Services(settings=settings, dispatcher_factory=_dispatcher_from)
    if isinstance(ctx.obj, Services):
        ctx.call_on_close(ctx.obj.close)


def _dispatcher_from(settings: Settings) -> Dispatcher:
    """``composition.dispatcher_from``, imported when a command first sends work."""
    from composition import dispatcher_from

    return dispatcher_from(settings)


from cli import (  # noqa: E402,F401  (commands register on import)
    diagram,
    ops,
    provisioning,
    removal_requests,
    token,
    webhook_deliveries,
    webhooks,
)
