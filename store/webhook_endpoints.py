"""Webhook endpoints of the organizations (``uow.webhooks``)."""

from __future__ import annotations

from store.repository import Repository


class WebhookEndpoints(Repository):
    """Webhook endpoints of the organizations (``uow.webhooks``)."""
