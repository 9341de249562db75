"""An organization's webhook endpoints and the events they are told of: ``lifecycle
webhooks list`` (a table, or ``--json``) and ``lifecycle events tail`` (the stored
payloads, one JSON line each). Run as the service, like every command here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cli import LazyModule, emit, main, services
from cli.ops import _table
from memberships.principal import SYSTEM

if TYPE_CHECKING:
    from memberships import events, webhook_endpoints
else:
    events = LazyModule("memberships.events")
    webhook_endpoints = LazyModule("memberships.webhook_endpoints")

ALL_PAGES = 200


@main.group()
def webhooks() -> None:
    """Organizations' webhook endpoints."""


@webhooks.command("list")
@click.option("--org", "org_ref", required=True, help="Organization domain or id.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def webhooks_list(org_ref: str, as_json: bool) -> None:
    """The organization's endpoints and their state (never their secrets)."""
    s = services()
    found: list[webhook_endpoints.WebhookEndpointView] = []
    cursor: str | None = None
    with s.uow() as uow:
        while True:
            page = webhook_endpoints.list_webhooks(
                uow, s.clock, SYSTEM, org_ref, cursor=cursor, limit=ALL_PAGES
            )
            found.extend(page.items)
            cursor = page.next_cursor
            if cursor is None:
                break
    if as_json:
        emit({"items": [_without_secret(v) for v in found]})
        return
    _table(
        ["ID", "URL", "STATE", "EVENTS", "CONFIRMS REMOVAL", "FAILING SINCE"],
        [
            [
                v.id,
                v.url,
                "enabled" if v.enabled else f"disabled: {v.disabled_reason or 'no reason given'}",
                ",".join(v.events) if v.events is not None else "all",
                "yes" if v.confirms_removal else "no",
                v.failing_since.isoformat() if v.failing_since else None,
            ]
            for v in found
        ],
    )


def _without_secret(view: webhook_endpoints.WebhookEndpointView) -> dict[str, object]:
    fields = {name: getattr(view, name) for name in view.__dataclass_fields__}
    fields.pop("secret", None)
    return fields


@main.group("events")
def events_group() -> None:
    """The events organizations' apps are told of (the outbox)."""


@events_group.command("tail")
@click.option("--org", "org_ref", required=True, help="Organization domain or id.")
@click.option(
    "-n",
    "--lines",
    "count",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many of the newest events.",
)
def events_tail(org_ref: str, count: int) -> None:
    """Print the organization's last N events, oldest first, one JSON payload per line
    (as receivers get them; redacted after a purge)."""
    s = services()
    with s.uow() as uow:
        found = events.recent_events(uow, s.clock, SYSTEM, org_ref, count)
    for event in found:
        click.echo(event.payload)
