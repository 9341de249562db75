"""Members' removal requests: what the store does to them when memberships move, and the
statements the sweep runs over them.

``after_transition`` runs in the transaction of every state change
(``store.transitions._after_write``):

- a membership that leaves ``active``/``restored`` some other way than by the approval
  of its request (the organization removed it, the member left on their own once the
  setting allowed it) ends its open request: ``closed``, with a ``closed_reason`` code
  the member reads, its audit row, its ``removal_request.closed`` event and the member's
  notice (``store.notices.record_closed_requests``). The approval
  marks its request ``approved`` before it removes the membership, so its own transition
  finds nothing open;
- a membership that is purged loses the free text of its requests (the member's
  ``message`` and the organization's ``decline_reason``): what is kept is the record
  that a request was made and answered, when, and how.

Both are set-based: one statement per call whatever the number of rows moved, so the
sweep's batches pay one UPDATE each.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ARRAY,
    ColumnElement,
    String,
    and_,
    any_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy import text as sql
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from statemachines.membership import MembershipState
from store import notices, outbox
from store.database import is_postgresql
from store.models import AuditEvent, Event, Membership, Organization, RemovalRequest
from store.repository import Repository

if TYPE_CHECKING:
    from store.transitions import Transition

OPEN = "open"
APPROVED = "approved"
DECLINED = "declined"
CLOSED = "closed"

# Why a request ended by itself, by the lifecycle event that moved its membership away
# from active/restored.
CLOSED_BY_EVENT = {
    "remove": "removed-by-organization",
    "request_leave": "left",
}
CLOSED_OTHERWISE = "membership-ended"
_USABLE = (MembershipState.ACTIVE.value, MembershipState.RESTORED.value)

# The audit actions of a request's steps.
ACTION_OPEN = "open_removal_request"
ACTION_APPROVE = "approve_removal_request"
ACTION_DECLINE = "decline_removal_request"
ACTION_OVERDUE = "removal_request_overdue"
ACTION_CLOSE = "close_removal_request"


def iso(value: datetime | None) -> str | None:
    """A timestamp as the events carry it (``store.outbox.timestamp``: UTC, microseconds,
    ``Z``)."""
    return outbox.timestamp(value) if value is not None else None


@dataclass(frozen=True, slots=True)
class RequestRef:
    """What an event about a request says: ids, dates, status. Never the member's message
    or e-mail."""

    id: str
    membership_id: str
    organization_id: str
    domain: str
    status: str
    created_at: datetime
    due_by: datetime
    reason: str | None = None
    closed_reason: str | None = None

    @classmethod
    def of(cls, request: RemovalRequest, domain: str) -> RequestRef:
        return cls(
            request.id,
            request.membership_id,
            request.organization_id,
            domain,
            request.status,
            request.created_at,
            request.due_by,
            request.decline_reason,
            request.closed_reason,
        )


def event_data(ref: RequestRef) -> dict[str, Any]:
    """The ``data`` of a ``removal_request.*`` event (camelCase)."""
    data: dict[str, Any] = {
        "requestId": ref.id,
        "membershipId": ref.membership_id,
        "organization": {"id": ref.organization_id, "domain": ref.domain},
        "status": ref.status,
        "createdAt": iso(ref.created_at),
        "dueBy": iso(ref.due_by),
    }
    if ref.reason is not None:
        data["reason"] = ref.reason
    if ref.closed_reason is not None:
        data["closedReason"] = ref.closed_reason
    return data


def record(session: Session, type_: str, ref: RequestRef, now: datetime) -> None:
    """The ``removal_request.<type_>`` event of one request, in the caller's transaction."""
    outbox.Outbox(session).record_event(
        type=f"removal_request.{type_}",
        organization_id=ref.organization_id,
        membership_id=ref.membership_id,
        occurred_at=now,
        data=event_data(ref),
    )


def _ids_where(session: Session, column: Any, ids: Sequence[str]) -> Any:
    if is_postgresql(session):
        # One array parameter, not thousands of bound values.
        return column == any_(bindparam("rr_ids", list(ids), type_=ARRAY(String)))
    return column.in_(list(ids))


def after_transition(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """Open removal requests of the memberships ``moved`` by ``transition``: closed when
    they leave active/restored; the free text erased when they are purged."""
    if transition.to_state == MembershipState.PURGED.value:
        _erase_free_text(session, moved)
        return
    if transition.from_state not in _USABLE or transition.to_state in _USABLE:
        return
    reason = CLOSED_BY_EVENT.get(transition.event, CLOSED_OTHERWISE)
    rows = session.execute(
        select(RemovalRequest, Organization.domain)
        .join(Organization, Organization.id == RemovalRequest.organization_id)
        .where(
            _ids_where(session, RemovalRequest.membership_id, moved),
            RemovalRequest.status == OPEN,
        )
    ).all()
    if not rows:
        return
    now = transition.now
    ids = [request.id for request, _ in rows]
    # Only those still open when the UPDATE reaches them (an answer committed meanwhile
    # keeps its own status).
    closed = _updated(
        session,
        update(RemovalRequest)
        .where(RemovalRequest.id.in_(ids), RemovalRequest.status == OPEN)
        .values(status=CLOSED, closed_at=now, closed_reason=reason),
        ids,
    )
    ended = [(request, domain) for request, domain in rows if request.id in closed]
    if not ended:
        return
    session.execute(
        insert(AuditEvent),
        [
            {
                "occurred_at": now,
                "actor": transition.actor,
                "action": ACTION_CLOSE,
                "outcome": "allowed",
                "organization_id": request.organization_id,
                "membership_id": request.membership_id,
                "from_state": transition.from_state,
                "to_state": transition.to_state,
                "reason": reason,
                "request_id": transition.request_id,
            }
            for request, _ in ended
        ],
    )
    for request, domain in ended:
        ref = replace(RequestRef.of(request, domain), status=CLOSED, closed_reason=reason)
        record(session, "closed", ref, now)
    notices.record_closed_requests(
        session, transition, [(request.id, request.membership_id, reason) for request, _ in ended]
    )
    # The ORM objects loaded above are stale now: whoever reads them next reads again.
    for request, _ in ended:
        session.expire(request)


def _updated(session: Session, statement: Any, ids: Sequence[str]) -> set[str]:
    """Run the UPDATE of removal requests; the ids it changed (all of ``ids`` where the
    database has no ``RETURNING``: the rows are locked, or the database is)."""
    statement = statement.execution_options(synchronize_session=False)
    if session.get_bind().dialect.update_returning:
        return set(session.scalars(statement.returning(RemovalRequest.id)))
    session.execute(statement)
    return set(ids)


def _erase_free_text(session: Session, moved: Sequence[str]) -> None:
    """The requests' message and decline reason, and the reason in their
    ``removal_request.declined`` events (the outbox's own purge takes ``data.user``)."""
    erase = (
        update(RemovalRequest)
        .where(
            _ids_where(session, RemovalRequest.membership_id, moved),
            (RemovalRequest.message.is_not(None)) | (RemovalRequest.decline_reason.is_not(None)),
        )
        .values(message=None, decline_reason=None)
        .execution_options(synchronize_session=False)
    )
    if not session.get_bind().dialect.update_returning:
        session.execute(erase)
        declined = list(moved)
    else:
        # Only the memberships that had a declined request have a reason in an event:
        # a purge of members who never asked (nearly all) costs this one UPDATE.
        declined = list(
            {
                str(membership_id)
                for membership_id, status in session.execute(
                    erase.returning(RemovalRequest.membership_id, RemovalRequest.status)
                )
                if status == DECLINED
            }
        )
    if not declined:
        return
    if is_postgresql(session):
        payload = sql("(payload::jsonb #- '{data,reason}')::text")
        has_reason = sql("(payload::jsonb -> 'data' -> 'reason') IS NOT NULL")
    else:
        payload = sql("json_remove(payload, '$.data.reason')")
        has_reason = sql("json_extract(payload, '$.data.reason') IS NOT NULL")
    session.execute(
        update(Event)
        .where(
            _ids_where(session, Event.membership_id, declined),
            Event.type == f"removal_request.{DECLINED}",
            has_reason,
        )
        .values(payload=payload)
        .execution_options(synchronize_session=False)
    )


def _rank() -> ColumnElement[int]:
    """Open requests first, then the answered and closed ones."""
    return case((RemovalRequest.status == OPEN, 0), else_=1)


class RemovalRequests(Repository):
    """Removal requests (``uow.removal_requests``)."""

    def get(self, request_id: str) -> RemovalRequest | None:
        """The removal request with this id."""
        return self.session.get(RemovalRequest, request_id)

    def open_request_of(self, membership_id: str) -> str | None:
        """The id of the membership's open request, if it has one."""
        return self.session.scalar(
            select(RemovalRequest.id).where(
                RemovalRequest.membership_id == membership_id, RemovalRequest.status == OPEN
            )
        )

    def add(self, request: RemovalRequest) -> bool:
        """Add a new request and flush it; ``False`` when another open request of the same
        membership won the unique index (the session must then be rolled back)."""
        self.session.add(request)
        try:
            self.session.flush()
        except IntegrityError:
            return False
        return True

    def record(self, type_: str, ref: RequestRef, now: datetime) -> None:
        """The ``removal_request.<type_>`` event of one request (``record``)."""
        record(self.session, type_, ref, now)

    def answer(
        self,
        request: RemovalRequest,
        *,
        status: str,
        now: datetime,
        by: str,
        reason: str | None = None,
    ) -> bool:
        """Answer an open request (compare-and-set on ``status = 'open'``): ``False`` when it
        was answered, closed meanwhile. ``request`` is read again when next used."""
        result = self.session.execute(
            update(RemovalRequest)
            .where(RemovalRequest.id == request.id, RemovalRequest.status == OPEN)
            .values(status=status, answered_at=now, answered_by=by, decline_reason=reason)
            .execution_options(synchronize_session=False)
        )
        self.session.expire(request)
        return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]  # an UPDATE's result

    def of_user(self, user_id: str) -> list[tuple[RemovalRequest, Organization]]:
        """The user's requests (through their memberships that are not purged), newest
        first, each with its organization."""
        rows = self.session.execute(
            select(RemovalRequest, Organization)
            .join(Membership, Membership.id == RemovalRequest.membership_id)
            .join(Organization, Organization.id == RemovalRequest.organization_id)
            .where(Membership.user_id == user_id)
            .order_by(RemovalRequest.created_at.desc(), RemovalRequest.id)
        ).all()
        return [(request, org) for request, org in rows]

    def page_of_organization(
        self,
        organization_id: str,
        now: datetime,
        *,
        status: str | None,
        overdue: bool,
        after: tuple[int, datetime, str] | None,
        limit: int,
    ) -> list[tuple[RemovalRequest, Membership, int]]:
        """Up to ``limit`` of the organization's requests after the (rank, due by, id)
        ``after``: open ones first (rank 0), by ``due_by``, then the others (rank 1); each
        with its membership and rank. ``status`` filters; ``overdue``: open and past due."""
        rank = _rank()
        query = (
            select(RemovalRequest, Membership, rank.label("rank"))
            .join(Membership, Membership.id == RemovalRequest.membership_id)
            .where(RemovalRequest.organization_id == organization_id)
        )
        if overdue:
            query = query.where(RemovalRequest.status == OPEN, RemovalRequest.due_by <= now)
        elif status:
            query = query.where(RemovalRequest.status == status)
        if after is not None:
            r, due, rid = after
            query = query.where(
                or_(
                    rank > r,
                    and_(
                        rank == r,
                        or_(
                            RemovalRequest.due_by > due,
                            and_(RemovalRequest.due_by == due, RemovalRequest.id > rid),
                        ),
                    ),
                )
            )
        rows = self.session.execute(
            query.order_by(rank, RemovalRequest.due_by, RemovalRequest.id).limit(limit)
        ).all()
        return [(request, membership, r) for request, membership, r in rows]

    def claim_overdue(self, now: datetime, limit: int) -> list[tuple[RemovalRequest, str]]:
        """Open requests past ``due_by`` the sweep has not marked overdue yet, oldest due
        first, each with its organization's domain; locked (``SKIP LOCKED``) on PostgreSQL so
        two sweepers never take the same one."""
        statement = (
            select(RemovalRequest, Organization.domain)
            .join(Organization, Organization.id == RemovalRequest.organization_id)
            .where(
                RemovalRequest.status == OPEN,
                RemovalRequest.overdue_at.is_(None),
                RemovalRequest.due_by <= now,
            )
            .order_by(RemovalRequest.due_by, RemovalRequest.id)
            .limit(limit)
        )
        if is_postgresql(self.session):
            statement = statement.with_for_update(of=RemovalRequest, skip_locked=True)
        return [(request, domain) for request, domain in self.session.execute(statement).all()]

    def mark_overdue(self, ids: Sequence[str], now: datetime) -> set[str]:
        """Note ``overdue_at`` on those of ``ids`` still open and not yet marked; which."""
        return _updated(
            self.session,
            update(RemovalRequest)
            .where(
                RemovalRequest.id.in_(list(ids)),
                RemovalRequest.status == OPEN,
                RemovalRequest.overdue_at.is_(None),
            )
            .values(overdue_at=now),
            ids,
        )

    def audit_overdue(
        self, requests: Sequence[RemovalRequest], now: datetime, actor: str, request_id: str | None
    ) -> None:
        """The ``removal_request_overdue`` audit entries of ``requests``: one bulk INSERT."""
        self.session.execute(
            insert(AuditEvent),
            [
                {
                    "occurred_at": now,
                    "actor": actor,
                    "action": ACTION_OVERDUE,
                    "outcome": "allowed",
                    "organization_id": r.organization_id,
                    "membership_id": r.membership_id,
                    "reason": None,
                    "request_id": request_id,
                }
                for r in requests
            ],
        )

    def count_overdue(self, now: datetime) -> int:
        """Open requests past ``due_by``."""
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(RemovalRequest)
                .where(RemovalRequest.status == OPEN, RemovalRequest.due_by <= now)
            )
            or 0
        )

    def longest_overdue(
        self, now: datetime, limit: int
    ) -> list[tuple[RemovalRequest, Organization]]:
        """The ``limit`` open requests longest past their deadline, each with its
        organization."""
        rows = self.session.execute(
            select(RemovalRequest, Organization)
            .join(Organization, Organization.id == RemovalRequest.organization_id)
            .where(RemovalRequest.status == OPEN, RemovalRequest.due_by <= now)
            .order_by(RemovalRequest.due_by, RemovalRequest.id)
            .limit(limit)
        ).all()
        return [(request, org) for request, org in rows]
