"""Lookups and the compare-and-set every state change goes through."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.orm import Session

from store.models import (
    ADMIN_ROLES,
    AuditEvent,
    Grant,
    MemberData,
    Membership,
    Organization,
    RoleAssignment,
    User,
)


def _is_guid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


def find_organization(session: Session, ref: str) -> Organization | None:
    """An organization by its id (a GUID) or its domain name (case-insensitive)."""
    ref = (ref or "").strip()
    if _is_guid(ref):
        found = session.get(Organization, ref.lower())
        if found is not None:
            return found
    return session.scalar(select(Organization).where(Organization.domain == ref.lower()))


def find_user(session: Session, ref: str) -> User | None:
    """A user by id or e-mail (case-insensitive)."""
    ref = (ref or "").strip()
    if _is_guid(ref):
        found = session.get(User, ref.lower())
        if found is not None:
            return found
    return session.scalar(select(User).where(User.email == ref.lower()))


def live_membership(session: Session, user_id: str, organization_id: str) -> Membership | None:
    """The membership that is not purged yet (at most one exists)."""
    return session.scalar(
        select(Membership).where(
            Membership.user_id == user_id,
            Membership.organization_id == organization_id,
            Membership.state != "purged",
        )
    )


def latest_membership(session: Session, user_id: str, organization_id: str) -> Membership | None:
    """The live membership, else the newest tombstone."""
    return live_membership(session, user_id, organization_id) or session.scalar(
        select(Membership)
        .where(Membership.user_id == user_id, Membership.organization_id == organization_id)
        .order_by(Membership.created_at.desc())
        .limit(1)
    )


def roles_of(session: Session, user_id: str, organization_id: str | None) -> set[str]:
    where = (
        RoleAssignment.organization_id.is_(None)
        if organization_id is None
        else RoleAssignment.organization_id == organization_id
    )
    return set(
        session.scalars(select(RoleAssignment.role).where(RoleAssignment.user_id == user_id, where))
    )


def is_admin_of(session: Session, user_id: str, organization_id: str) -> bool:
    return bool(roles_of(session, user_id, organization_id) & set(ADMIN_ROLES))


def compare_and_set(
    session: Session,
    membership: Membership,
    to_state: str,
    **fields: Any,
) -> bool:
    """Move ``membership`` to ``to_state`` only if nobody changed it since it was read.

    The UPDATE matches on id, state and version; zero rows means another decision won.
    On success the row object is refreshed with the new values.
    """
    result = session.execute(
        update(Membership)
        .where(
            and_(
                Membership.id == membership.id,
                Membership.state == membership.state,
                Membership.version == membership.version,
            )
        )
        .values(state=to_state, version=Membership.version + 1, **fields)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]  # CursorResult of an UPDATE
        return False
    session.refresh(membership)
    return True


def record_audit(
    session: Session,
    *,
    occurred_at: datetime,
    actor: str,
    action: str,
    outcome: str = "allowed",
    organization_id: str | None = None,
    membership_id: str | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    event = AuditEvent(
        occurred_at=occurred_at,
        actor=actor,
        action=action,
        outcome=outcome,
        organization_id=organization_id,
        membership_id=membership_id,
        from_state=from_state,
        to_state=to_state,
        reason=reason,
        request_id=request_id,
    )
    session.add(event)
    session.flush()
    return event


def grants_of(session: Session, membership_id: str) -> Sequence[Grant]:
    return session.scalars(
        select(Grant).where(Grant.membership_id == membership_id).order_by(Grant.kind, Grant.name)
    ).all()


def count_member_data(session: Session, membership_id: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(MemberData)
            .where(MemberData.membership_id == membership_id)
        )
        or 0
    )


def audit_trail(session: Session, membership_id: str) -> Sequence[AuditEvent]:
    return session.scalars(
        select(AuditEvent).where(AuditEvent.membership_id == membership_id).order_by(AuditEvent.id)
    ).all()
