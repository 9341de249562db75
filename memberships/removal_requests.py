"""A member who may not leave on their own asks the organization to remove them.

Where a leave is refused because the organization does not let external users leave
(``leave-disabled``) or because the member's account is disabled
(``account-disabled``), the member opens a removal request instead of writing to an
address nobody tracks. The organization must answer by ``due_by`` (the policy's
``removal_request_deadline``, 30 days by default, the GDPR's month for an erasure
request): its admin approves — the membership is removed exactly as an admin removal
removes it, in the same transaction — or declines with a reason the member reads. An
open request past ``due_by`` is overdue: the sweep marks it once (audit row, event,
notice) and the operators count it with the other timers. A request ends by itself
when the membership leaves ``active``/``restored`` some other way
(``store.removal_requests.after_transition``).

A home membership is never the subject of a request (its home directory manages it),
and a member who may leave is told to leave instead (``leave-allowed``). One open
request per membership: a second is ``removal-request-open`` with the first's id.

Every step is audited (ids and codes only: neither the message nor the reason goes to
the audit log) and is an event; the member is told of answers and of the deadline
passing (``store.notices``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from memberships.admin import remove_membership
from memberships.automatic import WORKER
from memberships.clock import Clock
from memberships.decisions import admin_organization, audit, deny
from memberships.errors import (
    HomeOrganization,
    InvalidInput,
    LeaveAllowed,
    NotFound,
    RemovalRequestClosed,
    RemovalRequestOpen,
    TransitionNotAllowed,
)
from memberships.principal import Principal
from memberships.reading import decode_cursor, encode_cursor, page_limit
from memberships.self_service import _caller_membership, leave_blocker
from memberships.views import OrganizationView, Page
from statemachines.membership import LEAVABLE_STATES
from store import removal_requests as store
from store.models import Membership, Organization, RemovalRequest
from store.unit_of_work import UnitOfWork

MAX_MESSAGE = 2000
MAX_REASON = 1000
STATUSES = (store.OPEN, store.APPROVED, store.DECLINED, store.CLOSED)
# ``?status=overdue``: open and past due.
OVERDUE = "overdue"

# Why a request ended by itself, as the member reads it.
CLOSED_REASONS = {
    "removed-by-organization": "{org} removed you from the organization.",
    "left": "You left {org} on your own.",
    "membership-ended": "Your membership in {org} ended.",
}


@dataclass(frozen=True, slots=True)
class RemovalRequestView:
    """A removal request as its member and the organization's admins read it.

    ``overdue``: still open and past ``due_by``. ``member_email`` and
    ``member_display_name`` are the membership's (what the admin sees of the member).
    """

    id: str
    membership_id: str
    organization: OrganizationView
    status: str
    overdue: bool
    message: str | None
    created_at: datetime
    due_by: datetime
    overdue_at: datetime | None
    answered_at: datetime | None
    answered_by: str | None
    decline_reason: str | None
    closed_at: datetime | None
    closed_reason: str | None
    member_email: str | None = None
    member_display_name: str | None = None
    membership_state: str | None = None

    @property
    def closed_reason_text(self) -> str | None:
        """Why the request ended by itself, in a sentence."""
        if self.closed_reason is None:
            return None
        sentence = CLOSED_REASONS.get(self.closed_reason, CLOSED_REASONS["membership-ended"])
        return sentence.format(org=self.organization.display_name)

    @classmethod
    def of(
        cls,
        request: RemovalRequest,
        org: Organization,
        now: datetime,
        membership: Membership | None = None,
    ) -> RemovalRequestView:
        return cls(
            id=request.id,
            membership_id=request.membership_id,
            organization=OrganizationView.of(org),
            status=request.status,
            overdue=request.status == store.OPEN and request.due_by <= now,
            message=request.message,
            created_at=request.created_at,
            due_by=request.due_by,
            overdue_at=request.overdue_at,
            answered_at=request.answered_at,
            answered_by=request.answered_by,
            decline_reason=request.decline_reason,
            closed_at=request.closed_at,
            closed_reason=request.closed_reason,
            member_email=membership.email if membership else None,
            member_display_name=membership.display_name if membership else None,
            membership_state=membership.state if membership else None,
        )


def _ref(request: RemovalRequest, org: Organization) -> store.RequestRef:
    return store.RequestRef.of(request, org.domain)


def _message(message: str | None) -> str | None:
    text = (message or "").strip()
    if len(text) > MAX_MESSAGE:
        raise InvalidInput(
            f"message: at most {MAX_MESSAGE} characters",
            field="message",
            errors=[
                {
                    "location": "json",
                    "field": "message",
                    "message": f"Keep the message to {MAX_MESSAGE} characters or fewer.",
                }
            ],
        )
    return text or None


def open_request(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    message: str | None = None,
) -> RemovalRequestView:
    """The member asks ``org_ref`` to remove them; the organization has until
    ``now + removal_request_deadline`` to answer.

    Raises ``NotFound`` (not a member there), ``TransitionNotAllowed`` (the membership is
    not active or restored), ``HomeOrganization`` (a home membership), ``LeaveAllowed``
    (the member may leave on their own), ``RemovalRequestOpen`` (one is open already,
    ``removal_request_id``) — each audited — or ``InvalidInput`` (the message).
    """
    now = clock()
    text = _message(message)
    user, org, membership = _caller_membership(uow, principal, org_ref)
    # Locked and read again: a removal or a leave committed meanwhile is seen here, and
    # one that comes after waits for this request, then closes it.
    uow.memberships.refresh(membership, lock=True)
    ids = {"organization_id": org.id, "membership_id": membership.id}
    if membership.state not in LEAVABLE_STATES:
        deny(
            uow,
            now,
            principal,
            store.ACTION_OPEN,
            TransitionNotAllowed(
                f"Your membership in {org.display_name} is {membership.state}: there is "
                "nothing to ask the organization to remove.",
                state=membership.state,
            ),
            from_state=membership.state,
            **ids,
        )
    blocker = leave_blocker(user, membership, org)
    if blocker is None:
        deny(
            uow,
            now,
            principal,
            store.ACTION_OPEN,
            LeaveAllowed(
                f"{org.display_name} lets you leave on your own: leave it instead "
                f"(POST /v1/me/organizations/{org.domain}/leave), no request is needed."
            ),
            from_state=membership.state,
            **ids,
        )
    if isinstance(blocker, HomeOrganization):
        deny(uow, now, principal, store.ACTION_OPEN, blocker, from_state=membership.state, **ids)
    assert blocker is not None
    existing = _open_request_id(uow, membership.id)
    if existing is not None:
        deny(
            uow,
            now,
            principal,
            store.ACTION_OPEN,
            _already_open(org, existing),
            from_state=membership.state,
            **ids,
        )
    request = RemovalRequest(
        membership_id=membership.id,
        organization_id=org.id,
        status=store.OPEN,
        message=text,
        created_at=now,
        due_by=now + uow.policy.removal_request_deadline,
    )
    if not uow.removal_requests.add(request):
        # another request of the same member won the unique index
        uow.rollback()
        raise _already_open(org, _open_request_id(uow, membership.id) or "") from None
    audit(
        uow,
        now,
        principal,
        store.ACTION_OPEN,
        membership=membership,
        from_state=membership.state,
        reason=blocker.code,
    )
    uow.removal_requests.record("opened", _ref(request, org), now)
    view = RemovalRequestView.of(request, org, now)
    uow.commit()
    return view


def _open_request_id(uow: UnitOfWork, membership_id: str) -> str | None:
    return uow.removal_requests.open_request_of(membership_id)


def _already_open(org: Organization, request_id: str) -> RemovalRequestOpen:
    return RemovalRequestOpen(
        f"You already asked {org.display_name} to remove you; that request is still open.",
        removal_request_id=request_id,
    )


def my_requests(uow: UnitOfWork, clock: Clock, principal: Principal) -> list[RemovalRequestView]:
    """The caller's removal requests, in every status, newest first (those of purged
    memberships no longer lead to the caller and are not listed)."""
    now = clock()
    rows = uow.removal_requests.of_user(principal.id)
    return [RemovalRequestView.of(r, o, now) for r, o in rows]


def list_requests(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    *,
    status: str | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page:
    """The organization's removal requests: open ones first, by ``due_by`` (so the
    overdue ones lead), then the others by ``due_by``; cursor-paginated. ``status``
    filters (``open``, ``approved``, ``declined``, ``closed``, or ``overdue``: open and
    past due)."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, "list_removal_requests")
    limit = page_limit(limit)
    if status and status != OVERDUE and status not in STATUSES:
        raise InvalidInput(f"status: {status!r} is not a removal request status", field="status")
    overdue = status == OVERDUE
    rows = uow.removal_requests.page_of_organization(
        org.id,
        now,
        status=None if overdue else status,
        overdue=overdue,
        after=_decode(cursor),
        limit=limit + 1,
    )
    items = tuple(RemovalRequestView.of(r, org, now, m) for r, m, _ in rows[:limit])
    next_cursor = None
    if len(rows) > limit:
        last, _, last_rank = rows[limit - 1]
        next_cursor = encode_cursor(f"{last_rank}|{last.due_by.isoformat()}|{last.id}")
    return Page(items, next_cursor)


def _decode(cursor: str | None) -> tuple[int, datetime, str] | None:
    value = decode_cursor(cursor)
    if value is None:
        return None
    try:
        rank, due, rid = value.split("|")
        parsed = datetime.fromisoformat(due)
        if rank not in ("0", "1") or parsed.tzinfo is None or len(rid) > 36:
            raise ValueError(value)
    except ValueError:
        raise InvalidInput("cursor: not a cursor this service gave out", field="cursor") from None
    return int(rank), parsed, rid


def _request_in(
    uow: UnitOfWork, org: Organization, request_id: str
) -> tuple[RemovalRequest, Membership]:
    request = uow.removal_requests.get((request_id or "").strip().lower())
    if request is None or request.organization_id != org.id:
        raise NotFound(f"No removal request {request_id!r} in {org.domain}.")
    membership = uow.memberships.get(request.membership_id)
    assert membership is not None  # a foreign key
    return request, membership


def _require_open(
    uow: UnitOfWork,
    now: datetime,
    principal: Principal,
    action: str,
    request: RemovalRequest,
    membership: Membership,
) -> None:
    if request.status == store.OPEN:
        return
    deny(
        uow,
        now,
        principal,
        action,
        RemovalRequestClosed(
            f"The removal request is {request.status} already.",
            removal_request_status=request.status,
        ),
        organization_id=request.organization_id,
        membership_id=membership.id,
        from_state=membership.state,
    )


def _answer(
    uow: UnitOfWork,
    now: datetime,
    principal: Principal,
    action: str,
    request: RemovalRequest,
    membership: Membership,
    status: str,
    reason: str | None = None,
) -> None:
    """Store the answer if the request is still open (compare-and-set); otherwise the
    refusal ``removal-request-closed`` (audited) with what became of it."""
    answered = uow.removal_requests.answer(
        request, status=status, now=now, by=principal.id, reason=reason
    )
    if not answered:
        _require_open(uow, now, principal, action, request, membership)


def approve(
    uow: UnitOfWork, clock: Clock, principal: Principal, org_ref: str, request_id: str
) -> RemovalRequestView:
    """Approve an open request: the membership is removed as an admin removal removes it
    (B2B collaboration: soft-deleted, restorable for the retention period; B2B direct
    connect: data removal starts at once), in the same transaction as the answer.

    Raises ``NotFound``, ``RemovalRequestClosed`` (audited), and what the removal raises
    (``TransitionNotAllowed``, ``Conflict``; audited)."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, store.ACTION_APPROVE)
    request, membership = _request_in(uow, org, request_id)
    _require_open(uow, now, principal, store.ACTION_APPROVE, request, membership)
    # The membership's row first (locked and read again), as every removal takes it first
    # (its compare-and-set), so an admin's removal at the same moment waits here instead
    # of deadlocking on the request's row.
    uow.memberships.refresh(membership, lock=True)
    from_state = membership.state
    # Answered first: the removal's own transition then finds no open request to close.
    _answer(uow, now, principal, store.ACTION_APPROVE, request, membership, store.APPROVED)
    remove_membership(uow, now, principal, org, membership)
    audit(
        uow,
        now,
        principal,
        store.ACTION_APPROVE,
        membership=membership,
        from_state=from_state,
        to_state=membership.state,
    )
    uow.removal_requests.record("approved", _ref(request, org), now)
    uow.notices.record_notice(
        membership_id=membership.id,
        kind="removal_request.approved",
        occurred_at=now,
        data={"requestId": request.id, "state": membership.state},
    )
    view = RemovalRequestView.of(request, org, now, membership)
    uow.commit()
    return view


def decline(
    uow: UnitOfWork,
    clock: Clock,
    principal: Principal,
    org_ref: str,
    request_id: str,
    reason: str | None,
) -> RemovalRequestView:
    """Decline an open request with ``reason``, which the member reads (required).

    Raises ``InvalidInput`` (no reason, or too long), ``NotFound`` or
    ``RemovalRequestClosed`` (audited)."""
    now = clock()
    org = admin_organization(uow, now, principal, org_ref, store.ACTION_DECLINE)
    text = (reason or "").strip()
    problem = (
        "Say why the request is declined: the member reads it."
        if not text
        else f"Keep the reason to {MAX_REASON} characters or fewer."
        if len(text) > MAX_REASON
        else None
    )
    if problem is not None:
        raise InvalidInput(
            f"reason: {problem}",
            field="reason",
            errors=[{"location": "json", "field": "reason", "message": problem}],
        )
    request, membership = _request_in(uow, org, request_id)
    _require_open(uow, now, principal, store.ACTION_DECLINE, request, membership)
    _answer(uow, now, principal, store.ACTION_DECLINE, request, membership, store.DECLINED, text)
    audit(
        uow,
        now,
        principal,
        store.ACTION_DECLINE,
        membership=membership,
        from_state=membership.state,
    )
    uow.removal_requests.record("declined", _ref(request, org), now)
    uow.notices.record_notice(
        membership_id=membership.id,
        kind="removal_request.declined",
        occurred_at=now,
        data={"requestId": request.id, "reason": text},
    )
    view = RemovalRequestView.of(request, org, now, membership)
    uow.commit()
    return view


def mark_overdue_requests(
    uow: UnitOfWork, clock: Clock, *, should_continue: Callable[[], bool] = lambda: True
) -> int:
    """The sweep's part: every open request past ``due_by`` not yet marked is marked
    overdue, once, with its audit row, its ``removal_request.overdue`` event and the
    member's notice; batch by batch, each committed. How many were marked."""
    limit = uow.policy.sweep_batch_size
    marked = 0
    while should_continue():
        now = clock()
        rows = uow.removal_requests.claim_overdue(now, limit)
        if not rows:
            uow.rollback()
            break
        marked_now = uow.removal_requests.mark_overdue([r.id for r, _ in rows], now)
        claimed = len(rows)
        rows = [(r, domain) for r, domain in rows if r.id in marked_now]
        if not rows:
            uow.commit()
            if claimed < limit:
                break
            continue
        uow.removal_requests.audit_overdue([r for r, _ in rows], now, WORKER.id, uow.request_id)
        for request, domain in rows:
            ref = store.RequestRef.of(request, domain)
            uow.removal_requests.record("overdue", ref, now)
            uow.notices.record_notice(
                membership_id=request.membership_id,
                kind="removal_request.overdue",
                occurred_at=now,
                data={"requestId": request.id, "dueBy": store.iso(request.due_by)},
            )
        uow.commit()
        marked += len(rows)
        if claimed < limit:
            break
    return marked


def count_overdue(uow: UnitOfWork, now: datetime) -> int:
    """Open removal requests past ``due_by``: the organization missed its deadline."""
    return uow.removal_requests.count_overdue(now)


def overdue_list(uow: UnitOfWork, now: datetime, limit: int) -> list[RemovalRequestView]:
    """The ``limit`` open requests longest past their deadline (the operators' list)."""
    rows = uow.removal_requests.longest_overdue(now, limit)
    return [RemovalRequestView.of(r, o, now) for r, o in rows]
