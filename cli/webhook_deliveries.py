"""``lifecycle webhooks deliveries|retry``: an endpoint's deliveries, and sending one
again now."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli import LazyModule, emit, services
from cli.webhooks import webhooks
from memberships.principal import SYSTEM

if TYPE_CHECKING:
    from memberships import webhook_deliveries
else:
    webhook_deliveries = LazyModule("memberships.webhook_deliveries")


def _when(value: object) -> str:
    return value.isoformat(timespec="seconds") if hasattr(value, "isoformat") else "-"


@webhooks.command("deliveries")
@click.option("--org", required=True, help="The organization's id or domain.")
@click.option("--webhook", "webhook_id", required=True, help="The endpoint's id.")
@click.option("--limit", type=click.IntRange(1, 200), default=50, help="At most this many.")
@click.option("--cursor", default=None, help="The next page's cursor.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def deliveries(org: str, webhook_id: str, limit: int, cursor: str | None, as_json: bool) -> None:
    """An endpoint's deliveries: event, state, attempts, last status and error, next attempt."""
    s = services()
    with s.uow() as uow:
        page = webhook_deliveries.list_deliveries(
            uow, s.clock, SYSTEM, org, webhook_id, cursor=cursor, limit=limit
        )
    if as_json:
        emit({"items": list(page.items), "next_cursor": page.next_cursor})
        return
    if not page.items:
        click.echo("no deliveries")
    for d in page.items:
        status = d.last_status_code if d.last_status_code is not None else "-"
        click.echo(
            f"{d.id}  {d.event_type:<30} {d.state:<9} attempts {d.attempts}  status {status}  "
            f"next {_when(d.next_attempt_at)}  {d.last_error or ''}".rstrip()
        )
    if page.next_cursor:
        click.echo(f"more: --cursor {page.next_cursor}")


@webhooks.command("retry")
@click.option("--org", required=True, help="The organization's id or domain.")
@click.option("--webhook", "webhook_id", default=None, help="The endpoint's id (optional).")
@click.argument("delivery_id")
def retry(org: str, webhook_id: str | None, delivery_id: str) -> None:
    """Send a pending or failed delivery again now."""
    s = services()
    with s.uow() as uow:
        view = webhook_deliveries.retry_delivery(uow, s.clock, SYSTEM, org, webhook_id, delivery_id)
    click.echo(f"{view.id}: sent again now (event {view.event_id}, {view.event_type})")
