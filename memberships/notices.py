"""What a member is told: their notices of the last 30 days, their mail preference, and
the delivery of the mail outbox (``store.notices`` writes both in the transaction of
each change).

Mail is delivered one attempt at a time: the attempt is claimed in the database (one
more attempt counted, the next one not before a lease ends), the content composed from
the notice and the organization's words at the first attempt and kept on the row, then
sent outside any transaction; the outcome is written back. A refused or failed attempt
is tried again after a back-off kept in ``next_attempt_at``, which the sweep re-sends
(``redrive_mail``); a lost message loses no mail. A recipient the server refuses for
good, or ``MAX_MAIL_ATTEMPTS`` failures, end in ``failed``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from memberships.clock import Clock
from memberships.decisions import audit
from memberships.errors import NotFound
from memberships.principal import Principal
from memberships.views import OrganizationView
from store import notices as store_notices
from store.models import MailMessage, User
from store.unit_of_work import Dispatcher, UnitOfWork

RECENT_DAYS = 30
RECENT_LIMIT = 50
MAX_MAIL_ATTEMPTS = 10
MAIL_LEASE = timedelta(minutes=5)
"""How long one attempt may take before the sweep may hand the mail to another worker."""
FIRST_BACKOFF = timedelta(seconds=30)
MAX_BACKOFF = timedelta(hours=1)


# ---- the member's notices ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoticeView:
    """One change a member is told of. ``kind`` is one of ``store.models.NOTICE_KINDS``;
    ``data`` holds its dates (``restorableUntil``, ``removalDueBy``, as datetimes) and an
    organization's ``reason``."""

    id: int
    kind: str
    occurred_at: datetime
    organization: OrganizationView
    caused_by_member: bool
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def restorable_until(self) -> datetime | None:
        return _when(self.data.get("restorableUntil"))

    @property
    def removal_due_by(self) -> datetime | None:
        return _when(self.data.get("removalDueBy"))

    @property
    def reason(self) -> str | None:
        value = self.data.get("reason")
        return str(value) if value else None


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def _data(text: str | None) -> dict[str, Any]:
    try:
        found = json.loads(text or "{}")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def recent_notices(uow: UnitOfWork, principal: Principal, now: datetime) -> list[NoticeView]:
    """The caller's notices of the last ``RECENT_DAYS`` days, newest first: what changed
    in their memberships, a purge included (the notice outlives the tombstone's link)."""
    since = now - timedelta(days=RECENT_DAYS)
    rows = uow.notices.recent_of(principal.id, since, RECENT_LIMIT)
    return [
        NoticeView(
            id=notice.id,
            kind=notice.kind,
            occurred_at=notice.occurred_at,
            organization=OrganizationView.of(org),
            caused_by_member=notice.caused_by_member,
            data=_data(notice.data),
        )
        for notice, org in rows
    ]


# ---- the member's mail preference --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MailPreferences:
    email_own_changes: bool
    """Mail about the changes the member made themself (their own leave) too. Changes made
    by an organization or by the service are always mailed."""


def _user(uow: UnitOfWork, principal: Principal) -> User:
    user = uow.directory.user(principal.id)
    if user is None:
        raise NotFound("The signed-in user is not known to this service.")
    return user


def get_preferences(uow: UnitOfWork, principal: Principal) -> MailPreferences:
    return MailPreferences(email_own_changes=_user(uow, principal).email_own_changes)


def set_email_own_changes(
    uow: UnitOfWork, clock: Clock, principal: Principal, value: bool
) -> MailPreferences:
    """Turn mail about the member's own changes on or off (audited; the caller's own
    setting only)."""
    user = _user(uow, principal)
    if user.email_own_changes != value:
        user.email_own_changes = value
        audit(
            uow,
            clock(),
            principal,
            "email_own_changes_on" if value else "email_own_changes_off",
            actor=principal.id,
        )
    uow.commit()
    return MailPreferences(email_own_changes=value)


# ---- mail delivery -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoticeContent:
    """What a mail about one notice is composed from: the organization's words, the kind,
    the date and the notice's data. Nothing about anyone but the member."""

    kind: str
    occurred_at: datetime
    organization: OrganizationView
    caused_by_member: bool
    data: dict[str, Any]
    public_base_url: str | None = None

    @property
    def restorable_until(self) -> datetime | None:
        return _when(self.data.get("restorableUntil"))

    @property
    def removal_due_by(self) -> datetime | None:
        return _when(self.data.get("removalDueBy"))

    @property
    def reason(self) -> str | None:
        value = self.data.get("reason")
        return str(value) if value else None


@dataclass(frozen=True, slots=True)
class ComposedMail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    recipient: str
    subject: str
    text: str
    html: str


class MailNotSent(Exception):
    """An attempt that did not hand the mail over. ``permanent``: the server refused the
    recipient for good (no retry)."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class MailSender(Protocol):
    def send_all(self, mails: list[OutgoingMail]) -> list[MailNotSent | None]:
        """Hand each mail to the mail server (one connection for all); per mail, ``None``
        when accepted, else why not."""
        ...


Composer = Callable[[NoticeContent], ComposedMail]


@dataclass(frozen=True, slots=True)
class MailOutcome:
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    skipped: int = 0


def backoff(attempts: int) -> timedelta:
    """How long after its ``attempts``-th failed attempt a mail is tried again."""
    return min(FIRST_BACKOFF * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def deliver_mail(
    open_uow: Callable[[], UnitOfWork],
    clock: Clock,
    mail_ids: list[str],
    sender: MailSender,
    compose: Composer,
    public_base_url: str | None = None,
) -> MailOutcome:
    """One attempt at each of ``mail_ids`` that is pending and due (others are left
    alone: sent already, or another attempt holds them): claimed and composed in one
    transaction, handed to ``sender`` outside it, the outcome written in another."""
    now = clock()
    claimed: list[tuple[int, int, OutgoingMail | None]] = []
    with open_uow() as uow:
        for raw in mail_ids:
            mail_id = int(raw)
            if not uow.notices.claim_mail(mail_id, now, now + MAIL_LEASE):
                continue
            row = uow.notices.mail(mail_id)
            if row is None:  # pragma: no cover - the claim found it
                continue
            if row.subject is None:
                composed = compose(_content_of(uow, row, public_base_url))
                row.subject, row.body_text, row.body_html = (
                    composed.subject,
                    composed.text,
                    composed.html,
                )
            outgoing = (
                OutgoingMail(row.recipient, row.subject, row.body_text or "", row.body_html or "")
                if row.recipient
                else None
            )
            claimed.append((mail_id, row.attempts, outgoing))
        uow.commit()
    skipped = len(mail_ids) - len(claimed)
    ready = [(i, a, o) for i, a, o in claimed if o is not None]
    results = sender.send_all([o for _, _, o in ready if o is not None]) if ready else []
    outcome = {"sent": 0, "retrying": 0, "failed": 0}
    done = clock()
    with open_uow() as uow:
        for mail_id, _, outgoing in claimed:
            if outgoing is None:
                uow.notices.finish_mail(mail_id, done, sent=False, error="no address to send to")
                outcome["failed"] += 1
        for (mail_id, attempts, _), error in zip(ready, results, strict=True):
            if error is None:
                uow.notices.finish_mail(mail_id, done, sent=True, error=None)
                outcome["sent"] += 1
            elif error.permanent or attempts >= MAX_MAIL_ATTEMPTS:
                uow.notices.finish_mail(mail_id, done, sent=False, error=str(error))
                outcome["failed"] += 1
            else:
                uow.notices.retry_mail_later(mail_id, done + backoff(attempts), str(error))
                outcome["retrying"] += 1
        uow.commit()
    return MailOutcome(skipped=skipped, **outcome)


def _content_of(uow: UnitOfWork, row: MailMessage, public_base_url: str | None) -> NoticeContent:
    notice = uow.notices.notice(row.notice_id) if row.notice_id is not None else None
    org = uow.directory.organization(row.organization_id)
    if org is None:  # pragma: no cover - organizations are never deleted
        raise NotFound(f"No organization {row.organization_id!r}.")
    return NoticeContent(
        kind=row.kind,
        occurred_at=notice.occurred_at if notice else row.created_at,
        organization=OrganizationView.of(org),
        caused_by_member=notice.caused_by_member if notice else False,
        data=_data(notice.data) if notice else {},
        public_base_url=public_base_url,
    )


def redrive_mail(uow: UnitOfWork, clock: Clock) -> int:
    """Send again the pending mail that is due and was not sent to the worker within
    ``redrive_after`` (its message was lost, or its back-off is over); how many. Nothing
    when mail is off."""
    if not uow.policy.send_mail:
        return 0
    limit = uow.policy.sweep_batch_size
    request_id = uow.request_id
    dispatcher = uow.dispatcher
    total = 0
    while True:
        now = clock()
        ids = uow.notices.claim_due_mail(now, now - uow.policy.redrive_after, limit)
        if not ids:
            uow.rollback()
            return total
        uow.on_commit(_sender(dispatcher, ids, request_id))
        uow.commit()
        total += len(ids)
        if len(ids) < limit:
            return total


def _sender(dispatcher: Dispatcher, ids: list[str], request_id: str | None) -> Callable[[], None]:
    return lambda: dispatcher.send_many(store_notices.SEND_MAIL, ids, request_id)


def forget_old_notices(uow: UnitOfWork, clock: Clock) -> int:
    """The notices of purged memberships older than ``RECENT_DAYS``, deleted batch by
    committed batch (the mail outbox keeps that a mail was sent; it names no one)."""
    limit = uow.policy.sweep_batch_size
    before = clock() - timedelta(days=RECENT_DAYS)
    total = 0
    while True:
        deleted = uow.notices.forget_notices_of_purged(before, limit)
        uow.commit()
        total += deleted
        if deleted < limit:
            return total
