"""Invitations (``uow.invitations``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select

from store.models import Invitation, Organization
from store.repository import Repository

PENDING = "pending"


class Invitations(Repository):
    """Invitations (``uow.invitations``)."""

    def pending_to(self, organization_id: str, email_key: str, now: datetime) -> str | None:
        """The id of an unexpired pending invitation of the organization to that address."""
        return self.session.scalar(
            select(Invitation.id)
            .where(
                Invitation.organization_id == organization_id,
                Invitation.email_key == email_key,
                Invitation.status == PENDING,
                Invitation.expires_at > now,
            )
            .limit(1)
        )

    def add(self, invitation: Invitation) -> None:
        """Insert a new invitation now (flushed), so its id is known."""
        self.session.add(invitation)
        self.session.flush()

    def get(self, invitation_id: str) -> Invitation | None:
        """An invitation by its id."""
        return self.session.get(Invitation, invitation_id)

    def page_of(self, organization_id: str, after: str | None, limit: int) -> Sequence[Invitation]:
        """A page of the organization's invitations in every status, after the id ``after``
        (``page_after``)."""
        query = select(Invitation).where(Invitation.organization_id == organization_id)
        return self.page_after(query, Invitation.id, after, limit)

    def pending_for(
        self, email_key: str, now: datetime
    ) -> Sequence[tuple[Invitation, Organization]]:
        """The unexpired pending invitations to that address with their organizations, oldest
        first."""
        return self.session.execute(
            select(Invitation, Organization)
            .join(Organization, Organization.id == Invitation.organization_id)
            .where(
                Invitation.email_key == email_key,
                Invitation.status == PENDING,
                Invitation.expires_at > now,
            )
            .order_by(Invitation.created_at, Invitation.id)
        ).all()
