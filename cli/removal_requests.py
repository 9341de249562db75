"""``lifecycle removal-requests``: members' requests to be removed, as an organization's
operators read them (the same list its admins get, open ones first by due date)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli import LazyModule, emit, main, services
from memberships.principal import SYSTEM

if TYPE_CHECKING:
    from memberships import removal_requests
else:
    removal_requests = LazyModule("memberships.removal_requests")

STATUSES = ("open", "overdue", "approved", "declined", "closed")


@main.group("removal-requests")
def group() -> None:
    """Members' requests to be removed from an organization."""


@group.command("list")
@click.option("--org", "org_ref", required=True, help="The organization's id or domain.")
@click.option("--status", type=click.Choice(STATUSES), default=None, help="Only these.")
@click.option("--limit", type=click.IntRange(1, 200), default=50, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_requests(org_ref: str, status: str | None, limit: int, as_json: bool) -> None:
    """Open ones first by due date (overdue first), then the answered and closed ones."""
    s = services()
    with s.uow() as uow:
        page = removal_requests.list_requests(
            uow, s.clock, SYSTEM, org_ref, status=status, limit=limit
        )
    if as_json:
        emit(list(page.items))
        return
    if not page.items:
        click.echo("no removal requests")
        return
    rows = [
        [
            r.id,
            r.member_email or "-",
            "overdue" if r.overdue else r.status,
            r.created_at.isoformat(timespec="seconds"),
            r.due_by.isoformat(timespec="seconds"),
        ]
        for r in page.items
    ]
    headers = ["REQUEST", "MEMBER", "STATUS", "CREATED", "DUE BY"]
    widths = [max(len(str(x)) for x in column) for column in zip(headers, *rows, strict=True)]
    for row in [headers, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
