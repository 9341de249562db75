"""``lifecycle webhooks``: an organization's webhook endpoints and their deliveries (the
delivery commands are in ``cli.webhook_deliveries``)."""

from __future__ import annotations

from cli import main


@main.group("webhooks")
def webhooks() -> None:
    """An organization's webhook endpoints and their deliveries."""
