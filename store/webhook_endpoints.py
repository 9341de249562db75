"""Webhook endpoints of the organizations (``uow.webhooks``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from store.models import WebhookEndpoint
from store.repository import Repository


class WebhookEndpoints(Repository):
    """Webhook endpoints of the organizations (``uow.webhooks``)."""

    def get(self, endpoint_id: str) -> WebhookEndpoint | None:
        """The endpoint with this id, from the session's identity map when it holds it."""
        return self.session.get(WebhookEndpoint, endpoint_id)

    def reload(self, endpoint_id: str) -> WebhookEndpoint | None:
        """The endpoint with this id as the database has it now (loaded attributes
        overwritten)."""
        return self.session.get(WebhookEndpoint, endpoint_id, populate_existing=True)

    def add(self, endpoint: WebhookEndpoint) -> None:
        """Insert a new endpoint, flushed (its id is set)."""
        self.session.add(endpoint)
        self.session.flush()

    def delete(self, endpoint: WebhookEndpoint) -> None:
        """Delete the endpoint (its deliveries go with it, by the foreign key)."""
        self.session.delete(endpoint)

    def page_of_organization(
        self, organization_id: str, after: str | None, limit: int
    ) -> Sequence[WebhookEndpoint]:
        """A page of the organization's endpoints, after the id ``after``
        (``page_after``)."""
        query = select(WebhookEndpoint).where(WebhookEndpoint.organization_id == organization_id)
        return self.page_after(query, WebhookEndpoint.id, after, limit)
