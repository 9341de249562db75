"""What a member is told of changes to their memberships (notices, and their mail).

Every state change passes ``after_transition`` in its own transaction (the one
transition writer calls it for one row, a sweep batch or a chunked removal's finish
alike). For each membership it moved it writes, with one INSERT … SELECT for the batch:

- a ``notices`` row addressed to the member's user (what the Organizations page shows
  for 30 days), for the changes a member is told of (see ``notice_kind``);
- when mail is on (``Policy.send_mail``: ``SMTP_URL`` is set), a ``mail_messages`` row
  (the mail outbox) for each notice whose user has an e-mail address, unless the member
  caused the change themself and did not ask for mail about their own changes
  (``users.email_own_changes``). The ids of those rows are sent to the ``send_mail``
  worker after the commit (the unit of work's ``on_commit``); the sweep sends again
  whatever is due and was lost.

A purge cuts the tombstone's link to the user (``memberships.user_id`` is null after the
UPDATE that moves it to ``purged``), so the ``purged`` notice finds its user through the
membership's earlier notices (every way into ``purge-pending`` writes one). In the same
transaction the membership's notices and mail lose their ``membership_id`` (nothing
leads from the person to the tombstone any more), and the mail already sent or failed
loses its recipient and content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    ColumnElement,
    Integer,
    String,
    any_,
    bindparam,
    delete,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from statemachines.membership import MembershipState
from store.database import is_postgresql
from store.models import (
    NOTICE_KINDS,
    MailMessage,
    Membership,
    Notice,
    Organization,
    User,
    UTCDateTime,
)
from store.repository import Repository
from store.session_keys import UNIT_OF_WORK

if TYPE_CHECKING:
    from store.transitions import Transition

SEND_MAIL = "send_mail"
"""The worker's actor that sends mail from the outbox (by mail id)."""

# The events a member causes themself: their leave, carried out by the service.
_OWN_EVENTS = frozenset({"complete_leave"})

_PURGED = MembershipState.PURGED.value
_SOFT_DELETED = MembershipState.SOFT_DELETED.value


def notice_kind(transition: Transition) -> str | None:
    """The notice a member gets for ``transition``; ``None`` for changes that are not
    told (the request to leave: its result, ``membership.left``, follows within seconds)."""
    match transition.event:
        case "complete_leave":
            return "membership.left"
        case "remove":
            return "membership.removed"
        case "restore":
            return "membership.restored"
        case "purge" | "expire_retention":
            return "membership.removal_started"
        case "finish_removal":
            return "membership.purged"
    return None


def _data_of(transition: Transition) -> dict[str, Any]:
    """The dates a member needs with the change: until when the organization can restore
    them, by when their data will be gone."""
    data: dict[str, Any] = {}
    fields = transition.fields
    if transition.to_state == _SOFT_DELETED and fields.get("purge_due_at") is not None:
        data["restorableUntil"] = fields["purge_due_at"].isoformat()
    if fields.get("removal_due_by") is not None:
        data["removalDueBy"] = fields["removal_due_by"].isoformat()
    if transition.event == "expire_retention":
        data["cause"] = "retention-ended"
    return data


def _ids_clause(session: Session, column: Any, ids: Sequence[str]) -> ColumnElement[bool]:
    if is_postgresql(session):
        # One array parameter, not thousands of bound values.
        return column == any_(bindparam("notice_ids", list(ids), type_=ARRAY(String)))
    return column.in_(list(ids))  # type: ignore[no-any-return]


def after_transition(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """The notices (and outbox mail) of the members whose memberships ``transition``
    moved, in its transaction; on a purge, the links of earlier notices and mail to the
    membership cut."""
    kind = notice_kind(transition)
    if kind is None or not moved:
        return
    m = Membership.__table__.c
    purged = transition.to_state == _PURGED
    user: Any
    if purged:
        # The UPDATE has already cut memberships.user_id: the member is the one the
        # membership's earlier notices were addressed to.
        user = (
            select(Notice.user_id)
            .where(Notice.membership_id == m.id)
            .order_by(Notice.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        membership: Any = literal(None, String())
    else:
        user = m.user_id
        membership = m.id
    own: Any = (
        literal(True, Boolean())
        if transition.event in _OWN_EVENTS
        else (m.pseudonym == literal(transition.actor, String()))
    )
    rows = select(
        user,
        m.organization_id,
        membership,
        literal(kind, String()),
        own,
        literal(transition.now, UTCDateTime()),
        literal(json.dumps(_data_of(transition)), String()),
    ).where(_ids_clause(session, m.id, moved), user.is_not(None))
    notice_ids = _insert_notices(session, rows)
    if purged:
        if len(notice_ids) < len(moved):
            _remember_unaddressed(session, transition, moved)
        _cut_links(session, moved)
    _queue_mail(session, notice_ids, transition.now)


_UNADDRESSED = "notices.unaddressed_purges"


def _remember_unaddressed(session: Session, transition: Transition, moved: Sequence[str]) -> None:
    """Purged memberships with no earlier notice to find their member by (their removal
    began before notices existed): ``address_departed`` writes their notice with the user
    the purge read before it cut the link. Kept on the session for this transaction."""
    addressed = set(
        session.scalars(
            select(Notice.membership_id).where(_ids_clause(session, Notice.membership_id, moved))
        )
    )
    waiting = session.info.setdefault(_UNADDRESSED, {})
    for membership_id in moved:
        if membership_id not in addressed:
            waiting[membership_id] = (transition.now, json.dumps(_data_of(transition)))


def address_departed(session: Session, departed: Sequence[tuple[str, str, str | None]]) -> None:
    """The ``purged`` notices ``after_transition`` could not address: ``departed`` holds
    (membership id, organization id, user id) as read before the purge, in its transaction."""
    waiting: dict[str, tuple[datetime, str]] = session.info.pop(_UNADDRESSED, {})
    notice_ids: list[int] = []
    occurred_at: datetime | None = None
    for membership_id, organization_id, user_id in departed:
        if not user_id or membership_id not in waiting:
            continue
        occurred_at, data = waiting[membership_id]
        found = session.scalars(
            insert(Notice)
            .values(
                user_id=user_id,
                organization_id=organization_id,
                membership_id=None,
                kind="membership.purged",
                caused_by_member=False,
                occurred_at=occurred_at,
                data=data,
            )
            .returning(Notice.id)
        )
        notice_ids.extend(int(i) for i in found)
    if occurred_at is not None:
        _queue_mail(session, notice_ids, occurred_at)


def _merge_removal_into_approval(
    session: Session, membership_id: str, occurred_at: datetime
) -> dict[str, Any]:
    """The data of the removal notice written with the approval (same membership, same
    time), whose own mail is dropped (it has not left the transaction): one mail, not two."""
    removal = session.execute(
        select(Notice.id, Notice.data).where(
            Notice.membership_id == membership_id,
            Notice.occurred_at == occurred_at,
            Notice.kind.in_(("membership.removed", "membership.removal_started")),
        )
    ).first()
    if removal is None:
        return {}
    session.execute(
        delete(MailMessage)
        .where(MailMessage.notice_id == removal.id, MailMessage.state == "pending")
        .execution_options(synchronize_session=False)
    )
    found = json.loads(removal.data or "{}")
    return found if isinstance(found, dict) else {}


def record_closed_requests(
    session: Session, transition: Transition, ended: Sequence[tuple[str, str, str]]
) -> None:
    """The ``removal_request.closed`` notices of the requests ``transition`` ended
    (request id, membership id, closed reason), with their mail, in its transaction.

    Written after the transition's own notices (``store.transitions`` calls this hook
    after ``after_transition``): where the organization's removal ended the request, the
    member gets one mail, the request's, which carries the removal's dates; the removal
    stays a notice of its own on the page, as with an approval. A request ended by the
    member's own leave is their own change (mailed only if they asked for that)."""
    if not ended:
        return
    now = transition.now
    membership_ids = [membership_id for _, membership_id, _ in ended]
    m = Membership.__table__.c
    members = {
        row.id: row
        for row in session.execute(
            select(m.id, m.user_id, m.organization_id, m.pseudonym).where(
                _ids_clause(session, m.id, membership_ids), m.user_id.is_not(None)
            )
        )
    }
    removals = {
        str(row.membership_id): (row.id, row.data)
        for row in session.execute(
            select(Notice.id, Notice.membership_id, Notice.data).where(
                _ids_clause(session, Notice.membership_id, membership_ids),
                Notice.occurred_at == now,
                Notice.kind.in_(("membership.removed", "membership.removal_started")),
            )
        )
    }
    if removals:
        session.execute(
            delete(MailMessage)
            .where(
                MailMessage.notice_id.in_([notice_id for notice_id, _ in removals.values()]),
                MailMessage.state == "pending",
            )
            .execution_options(synchronize_session=False)
        )
    rows = []
    for request_id, membership_id, reason in ended:
        member = members.get(membership_id)
        if member is None:
            continue
        _, removal_data = removals.get(membership_id, (None, None))
        found = json.loads(removal_data or "{}")
        data = {
            **(found if isinstance(found, dict) else {}),
            "requestId": request_id,
            "closedReason": reason,
        }
        rows.append(
            {
                "user_id": member.user_id,
                "organization_id": member.organization_id,
                "membership_id": membership_id,
                "kind": "removal_request.closed",
                "caused_by_member": transition.event in _OWN_REQUEST_ENDINGS
                or member.pseudonym == transition.actor,
                "occurred_at": now,
                "data": json.dumps(data),
            }
        )
    if not rows:
        return
    notice_ids = [int(i) for i in session.scalars(insert(Notice).returning(Notice.id), rows)]
    _queue_mail(session, notice_ids, now)


# The events by which a member ends their own request: their leave.
_OWN_REQUEST_ENDINGS = frozenset({"request_leave"})


def _insert_notices(session: Session, rows: Any) -> list[int]:
    statement = (
        insert(Notice)
        .from_select(
            [
                "user_id",
                "organization_id",
                "membership_id",
                "kind",
                "caused_by_member",
                "occurred_at",
                "data",
            ],
            rows,
        )
        .returning(Notice.id)
    )
    return [int(i) for i in session.scalars(statement)]


def _queue_mail(session: Session, notice_ids: Sequence[int], now: datetime) -> None:
    """The outbox rows of the notices just written, when mail is on; their ids sent to
    the mail worker after the commit."""
    uow = session.info.get(UNIT_OF_WORK)
    if not notice_ids or uow is None or not uow.policy.send_mail:
        return
    n = Notice.__table__.c
    u = User.__table__.c
    if is_postgresql(session):
        chosen = n.id == any_(bindparam("new_notices", list(notice_ids), type_=ARRAY(Integer)))
    else:
        chosen = n.id.in_(list(notice_ids))
    rows = (
        select(
            n.id,
            n.membership_id,
            n.organization_id,
            n.kind,
            u.email,
            literal("pending", String()),
            literal(0, Integer()),
            literal(now, UTCDateTime()),
            literal(now, UTCDateTime()),
            literal(now, UTCDateTime()),
        )
        .join_from(Notice, User, u.id == n.user_id)
        .where(
            chosen,
            u.email.is_not(None),
            or_(n.caused_by_member.is_(False), u.email_own_changes.is_(True)),
        )
    )
    statement = (
        insert(MailMessage)
        .from_select(
            [
                "notice_id",
                "membership_id",
                "organization_id",
                "kind",
                "recipient",
                "state",
                "attempts",
                "next_attempt_at",
                "queued_at",
                "created_at",
            ],
            rows,
        )
        .returning(MailMessage.id)
    )
    mail_ids = [str(i) for i in session.scalars(statement)]
    if mail_ids:
        request_id = uow.request_id
        dispatcher = uow.dispatcher
        uow.on_commit(lambda: dispatcher.send_many(SEND_MAIL, mail_ids, request_id))


def _cut_links(session: Session, membership_ids: Sequence[str]) -> None:
    """A purge: the membership's notices and mail no longer name it; the mail already
    sent or failed keeps no recipient and no content (a pending one keeps them until it
    is sent, then loses them: ``finish_mail``)."""
    session.execute(
        update(Notice)
        .where(_ids_clause(session, Notice.membership_id, membership_ids))
        .values(membership_id=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(MailMessage)
        .where(
            _ids_clause(session, MailMessage.membership_id, membership_ids),
            MailMessage.state != "pending",
        )
        .values(**_ERASED)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(MailMessage)
        .where(_ids_clause(session, MailMessage.membership_id, membership_ids))
        .values(membership_id=None)
        .execution_options(synchronize_session=False)
    )


_ERASED: dict[str, Any] = {
    "membership_id": None,
    "recipient": None,
    "subject": None,
    "body_text": None,
    "body_html": None,
}
"""What a mail of a purged membership keeps nothing of once it is sent or has failed."""


class Notices(Repository):
    """The member's notices and the mail outbox (``uow.notices``)."""

    # ---- the member's notices ----------------------------------------------------------------

    def record_notice(
        self,
        *,
        membership_id: str,
        kind: str,
        occurred_at: datetime,
        data: Mapping[str, Any],
    ) -> None:
        """One notice for the member of ``membership_id`` that is not a transition (a
        removal request answered or overdue), in the caller's transaction, with its mail.

        An approval removes the membership in the same transaction, at the same time: the
        member then gets one mail, the approval's, which carries the removal's dates (until
        when the account can be restored, by when the data will be gone); the removal stays
        a notice of its own on the page."""
        if kind not in NOTICE_KINDS:
            raise ValueError(f"no notice kind {kind!r}; known: {', '.join(NOTICE_KINDS)}")
        data = dict(data)
        if kind == "removal_request.approved":
            data = {
                **_merge_removal_into_approval(self.session, membership_id, occurred_at),
                **data,
            }
        m = Membership.__table__.c
        rows = select(
            m.user_id,
            m.organization_id,
            m.id,
            literal(kind, String()),
            literal(False, Boolean()),
            literal(occurred_at, UTCDateTime()),
            literal(json.dumps(data), String()),
        ).where(m.id == membership_id, m.user_id.is_not(None))
        _queue_mail(self.session, _insert_notices(self.session, rows), occurred_at)

    def recent_of(
        self, user_id: str, since: datetime, limit: int
    ) -> list[tuple[Notice, Organization]]:
        """The user's notices since ``since``, newest first, at most ``limit``, each with its
        organization."""
        rows = self.session.execute(
            select(Notice, Organization)
            .join(Organization, Organization.id == Notice.organization_id)
            .where(Notice.user_id == user_id, Notice.occurred_at >= since)
            .order_by(Notice.occurred_at.desc(), Notice.id.desc())
            .limit(limit)
        ).all()
        return [(notice, org) for notice, org in rows]

    def notice(self, notice_id: int) -> Notice | None:
        """The notice with this id."""
        return self.session.get(Notice, notice_id)

    # ---- the outbox, for the mail worker and the sweep ---------------------------------------

    def mail(self, mail_id: int) -> MailMessage | None:
        """The outbox row with this id."""
        return self.session.get(MailMessage, mail_id)

    def claim_mail(self, mail_id: int, now: datetime, lease_until: datetime) -> bool:
        """Take a due pending mail for one attempt: one more attempt counted, and the next
        one not before ``lease_until`` (so a second message about it, or the sweep, leaves it
        alone while this attempt runs). ``False`` when it is not pending or not due."""
        result = self.session.execute(
            update(MailMessage)
            .where(
                MailMessage.id == mail_id,
                MailMessage.state == "pending",
                or_(MailMessage.next_attempt_at.is_(None), MailMessage.next_attempt_at <= now),
            )
            .values(attempts=MailMessage.attempts + 1, next_attempt_at=lease_until)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]  # CursorResult of an UPDATE

    def finish_mail(self, mail_id: int, now: datetime, *, sent: bool, error: str | None) -> None:
        """A mail sent (``sent``) or given up (``failed``); a purged membership's mail keeps
        no recipient and no content from then on."""
        values: dict[str, Any] = {"state": "sent" if sent else "failed", "last_error": error}
        if sent:
            values["sent_at"] = now
        self.session.execute(
            update(MailMessage)
            .where(MailMessage.id == mail_id, MailMessage.state == "pending")
            .values(**values, next_attempt_at=None)
            .execution_options(synchronize_session=False)
        )
        self.session.execute(
            update(MailMessage)
            .where(MailMessage.id == mail_id, MailMessage.membership_id.is_(None))
            .values(**_ERASED)
            .execution_options(synchronize_session=False)
        )

    def retry_mail_later(self, mail_id: int, at: datetime, error: str) -> None:
        """A failed attempt to be tried again at ``at`` (the sweep sends it then)."""
        self.session.execute(
            update(MailMessage)
            .where(MailMessage.id == mail_id, MailMessage.state == "pending")
            .values(next_attempt_at=at, queued_at=None, last_error=error)
            .execution_options(synchronize_session=False)
        )

    def claim_due_mail(self, now: datetime, queued_before: datetime, limit: int) -> list[str]:
        """Pending mail due now and not sent to the worker since ``queued_before`` (its
        message was lost, or its next attempt has come): marked queued now; their ids."""
        chosen = (
            select(MailMessage.id)
            .where(
                MailMessage.state == "pending",
                MailMessage.next_attempt_at <= now,
                or_(MailMessage.queued_at.is_(None), MailMessage.queued_at <= queued_before),
            )
            .order_by(MailMessage.next_attempt_at)
            .limit(limit)
        )
        if is_postgresql(self.session):
            chosen = chosen.with_for_update(skip_locked=True)
        ids = [int(i) for i in self.session.scalars(chosen)]
        if ids:
            self.session.execute(
                update(MailMessage)
                .where(MailMessage.id.in_(ids))
                .values(queued_at=now)
                .execution_options(synchronize_session=False)
            )
        return [str(i) for i in ids]

    def forget_notices_of_purged(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` notices older than ``before`` whose membership is purged
        (``membership_id`` null): once the page no longer shows them, nothing needs them, and
        the person's link to the organization goes with them. How many."""
        chosen = (
            select(Notice.id)
            .where(Notice.membership_id.is_(None), Notice.occurred_at < before)
            .limit(limit)
        )
        ids = [int(i) for i in self.session.scalars(chosen)]
        if ids:
            self.session.execute(
                delete(Notice)
                .where(Notice.id.in_(ids))
                .execution_options(synchronize_session=False)
            )
        return len(ids)
