"""Provisioning and inspection commands: each prints the object it made as JSON."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from cli import LazyModule, database_file_usable, emit, fail, main, services
from memberships.errors import NotFound
from memberships.principal import SYSTEM
from store.roles import ADMIN_ROLES, ROLES

if TYPE_CHECKING:
    from memberships import provisioning, reading
    from store import queries
else:
    provisioning = LazyModule("memberships.provisioning")
    reading = LazyModule("memberships.reading")
    queries = LazyModule("store.queries")

GUEST_KINDS = ("b2b-collaboration", "b2b-direct-connect")


@main.group()
def db() -> None:
    """The database schema."""


def _move_schema(move: Callable[[str, str], None], revision: str, hint: str) -> None:
    """Upgrade or downgrade to ``revision``; an unknown one is a bad parameter."""
    from alembic.util import CommandError

    from store.migrate import current

    url = services().settings.database_url
    with database_file_usable(url):
        try:
            move(url, revision)
        except CommandError as error:
            raise click.BadParameter(str(error), param_hint=hint) from error
    click.echo(f"database at revision {current(url) or 'none'}", err=True)


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply the migrations up to REVISION."""
    from store.migrate import upgrade

    _move_schema(upgrade, revision, "'--revision'")


@db.command("current")
def db_current() -> None:
    """Print the database's revision (nothing applied yet: 'none')."""
    from store.migrate import current

    url = services().settings.database_url
    with database_file_usable(url):
        click.echo(current(url) or "none")


@db.command("history")
def db_history() -> None:
    """List every revision, newest first, marking the database's current one."""
    import sys

    from store.migrate import history

    url = services().settings.database_url
    with database_file_usable(url):
        history(url, sys.stdout)


@db.command("downgrade", context_settings={"ignore_unknown_options": True})
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Undo the migrations above REVISION (e.g. 0002, or -1 for one step; 'base' for all)."""
    from store.migrate import downgrade

    _move_schema(downgrade, revision, "'REVISION'")


@db.command("revision")
@click.option("-m", "--message", required=True, help="What the migration does.")
@click.option(
    "--autogenerate",
    is_flag=True,
    help="Fill it in from the difference between the models and the database (at head).",
)
def db_revision(message: str, autogenerate: bool) -> None:
    """Write a new migration into store/migrations/versions (development, in a checkout)."""
    from alembic.util import CommandError

    from store.migrate import revision

    url = services().settings.database_url
    with database_file_usable(url):
        try:
            path = revision(url, message, autogenerate)
        except CommandError as error:
            raise click.ClickException(str(error)) from error
    click.echo(str(path))


@db.command("grant-app-role")
@click.argument("name")
def db_grant_app_role(name: str) -> None:
    """Grant the PostgreSQL role NAME what the service needs, and no more.

    Run it as the role that owns the tables (the one `db upgrade` runs as), after every
    upgrade; then run the web, worker and scheduler processes as NAME. The audit log is
    insert-only for NAME: UPDATE, DELETE and TRUNCATE are refused.
    """
    from store.app_role import AppRoleRefused, grant_app_role

    engine = services().session_factory.kw["bind"]
    try:
        with engine.begin() as connection:
            grants = grant_app_role(connection, name)
    except AppRoleRefused as refused:
        raise click.BadParameter(str(refused), param_hint="'NAME'") from None
    click.echo(
        f"role {grants.role!r}: read and write on {len(grants.read_write)} tables, "
        f"read and insert only on {', '.join(grants.append_only)} (schema {grants.schema})",
        err=True,
    )


@main.group()
def org() -> None:
    """Organizations."""


@org.command("create")
@click.option("--domain", required=True, help="The organization's domain, e.g. contoso.example.")
@click.option("--name", required=True, help="Display name.")
@click.option("--privacy-email", help="Privacy contact e-mail.")
@click.option("--privacy-url", help="Privacy statement URL (http or https).")
@click.option(
    "--leave-disallowed",
    is_flag=True,
    help="External users may not leave on their own (needs a privacy profile).",
)
def org_create(
    domain: str,
    name: str,
    privacy_email: str | None,
    privacy_url: str | None,
    leave_disallowed: bool,
) -> None:
    """Create an organization."""
    s = services()
    with s.uow() as uow:
        emit(
            provisioning.create_organization(
                uow,
                s.clock,
                SYSTEM,
                domain,
                name,
                privacy_email,
                privacy_url,
                external_user_leave_allowed=not leave_disallowed,
            )
        )


@main.group()
def user() -> None:
    """Users."""


@user.command("create")
@click.option("--email", required=True)
@click.option("--name", required=True)
@click.option("--home-org", help="Home organization (domain or id); none for personal accounts.")
@click.option("--disabled", is_flag=True, help="The account is disabled.")
def user_create(email: str, name: str, home_org: str | None, disabled: bool) -> None:
    """Create a user (and their home membership when --home-org is given)."""
    s = services()
    with s.uow() as uow:
        emit(
            provisioning.create_user(
                uow, s.clock, SYSTEM, email, name, home_org, enabled=not disabled
            )
        )


@main.group()
def guest() -> None:
    """Guest memberships."""


@guest.command("add")
@click.option("--org", "org_ref", required=True, help="Organization domain or id.")
@click.option("--user", "user_ref", required=True, help="User e-mail or id.")
@click.option("--kind", type=click.Choice(GUEST_KINDS), required=True)
@click.option("--disabled", is_flag=True, help="The account is disabled in that organization.")
def guest_add(org_ref: str, user_ref: str, kind: str, disabled: bool) -> None:
    """Add a guest membership for an existing user."""
    s = services()
    with s.uow() as uow:
        emit(
            provisioning.add_guest(
                uow, s.clock, SYSTEM, org_ref, user_ref, kind, enabled=not disabled
            )
        )


@main.group()
def grant() -> None:
    """Group memberships and app-role assignments."""


@grant.command("add")
@click.option("--org", "org_ref", required=True)
@click.option("--user", "user_ref", required=True)
@click.option("--group", help="Group name.")
@click.option("--app-role", help="App role name.")
def grant_add(org_ref: str, user_ref: str, group: str | None, app_role: str | None) -> None:
    """Give a membership a group or an app role (exactly one)."""
    if bool(group) == bool(app_role):
        raise click.UsageError("give exactly one of --group and --app-role")
    s = services()
    kind, name = ("group", group) if group else ("app-role", app_role)
    with s.uow() as uow:
        emit(provisioning.add_grant(uow, s.clock, SYSTEM, org_ref, user_ref, kind, name or ""))


@main.group()
def data() -> None:
    """The user's data in an organization."""


@data.command("add")
@click.option("--org", "org_ref", required=True)
@click.option("--user", "user_ref", required=True)
@click.option("--count", type=click.IntRange(1, 1_000_000), required=True)
def data_add(org_ref: str, user_ref: str, count: int) -> None:
    """Add COUNT records of the user's data in the organization.

    Prints the membership that holds them (its id, the user's and the organization's)
    and how many records were added.
    """
    s = services()
    with s.uow() as uow:
        added = provisioning.add_member_data(uow, s.clock, SYSTEM, org_ref, user_ref, count)
        # The use case has just resolved both references and found the membership.
        org = uow.directory.find_organization(org_ref)
        user = uow.directory.find_user(user_ref)
        membership = uow.memberships.live_membership(user.id, org.id) if org and user else None
        if org is None or membership is None:
            raise NotFound(f"{user_ref} is not a member of {org_ref}.")
        emit(
            {
                "membership_id": membership.id,
                "user_id": membership.user_id,
                "organization_id": org.id,
                "added": added,
            }
        )


@main.group()
def role() -> None:
    """Directory roles."""


@role.command("grant")
@click.option("--org", "org_ref", help="Organization (not for the operator role).")
@click.option("--user", "user_ref", required=True)
@click.option(
    "--role",
    "role_name",
    type=click.Choice(ROLES),
    required=True,
    help=f"{', '.join(ADMIN_ROLES)} in an organization, or operator (platform-wide).",
)
def role_grant(org_ref: str | None, user_ref: str, role_name: str) -> None:
    """Grant a role."""
    s = services()
    with s.uow() as uow:
        emit(provisioning.grant_role(uow, s.clock, SYSTEM, user_ref, role_name, org_ref))


@main.group()
def membership() -> None:
    """Memberships."""


@membership.command("show")
@click.option("--org", "org_ref", required=True)
@click.option("--user", "user_ref", required=True)
def membership_show(org_ref: str, user_ref: str) -> None:
    """State, timestamps, grants and audit trail of a membership."""
    s = services()
    with s.uow() as uow:
        emit(reading.show_membership(uow, s.clock, SYSTEM, org_ref, user_ref))


@main.command("seed-demo")
@click.option(
    "--reset",
    is_flag=True,
    help="Erase the database first and seed the demo as new (only a database that holds "
    "nothing but the demo).",
)
def seed_demo(reset: bool) -> None:
    """Seed demo organizations and users covering every rule (safe to run again).

    What exists is left as it is, including a demo membership that has moved on in its
    lifecycle (left, removed, restored, purged): it gets nothing added. With --reset,
    the database is emptied and the demo seeded as new, so a walkthrough can start over.
    """
    from cli.demo import DemoResetRefused, reset_database, seed

    s = services()
    if reset:
        try:
            lines = reset_database(s.settings.database_url, s.uow, s.close)
        except DemoResetRefused as refused:
            fail(str(refused))
        for line in lines:
            click.echo(line, err=True)
    for line in seed(s.uow, s.clock).lines():
        click.echo(line, err=True)
