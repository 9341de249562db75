"""The statements of webhook delivery: the fan-out of the outbox's events to the
endpoints' deliveries, the claims of due deliveries and of one attempt, and the apps'
removal confirmations.

Every claim is safe with several workers and sweepers at once: on PostgreSQL the
sweeps' claims lock with ``FOR UPDATE SKIP LOCKED``, and an attempt is taken by a
compare-and-set on the delivery row (``claim_attempt``), so two workers never send the
same attempt. SQLite serializes writers with ``BEGIN IMMEDIATE``.

The use cases run them through ``WebhookDeliveries`` (``uow.deliveries``); what the
other store modules call too stays a function of the session: the after-change hooks'
``any_endpoint_for_memberships`` and ``add_confirmations`` (``store.transitions``,
``store.app_confirmations``) and the sweep's ``waiting_on_apps`` condition
(``store.batch_operations``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, exists, func, insert, or_, select, update
from sqlalchemy import text as sql
from sqlalchemy.orm import Session

from statemachines.membership import MembershipState
from store.database import is_postgresql
from store.models import (
    Event,
    Membership,
    RemovalAppConfirmation,
    UTCDateTime,
    WebhookDelivery,
    WebhookEndpoint,
    new_id,
)
from store.repository import Repository

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"


def _locked(statement: Any) -> Any:
    return statement.with_for_update(skip_locked=True)


def endpoint_wants(events_filter: str | None, event_type: str) -> bool:
    """Whether an endpoint's ``events`` (a JSON list, or null for every type) takes
    ``event_type``."""
    if events_filter is None:
        return True
    try:
        wanted = json.loads(events_filter)
    except ValueError:
        return False
    return wanted is None or event_type in wanted


# PostgreSQL: the claim (locked, skipping events another sweeper holds), the mark and the
# deliveries as one statement; nothing but the new deliveries' ids crosses to Python.
_FAN_OUT_ON_POSTGRESQL = sql(
    "WITH claimed AS ("
    " UPDATE events SET dispatched_at = :now WHERE id IN ("
    "  SELECT id FROM events WHERE dispatched_at IS NULL ORDER BY id LIMIT :limit"
    "  FOR UPDATE SKIP LOCKED)"
    " RETURNING id, type, organization_id"
    "), made AS ("
    " INSERT INTO webhook_deliveries"
    " (id, endpoint_id, event_id, state, attempts, next_attempt_at, enqueued_at, created_at)"
    " SELECT gen_random_uuid()::text, w.id, c.id, 'pending', 0, :now, :now, :now"
    " FROM claimed AS c JOIN webhook_endpoints AS w"
    "  ON w.organization_id = c.organization_id AND w.enabled"
    " WHERE w.events IS NULL OR w.events::jsonb = 'null'::jsonb"
    "  OR jsonb_exists(w.events::jsonb, c.type)"
    " RETURNING id"
    ") SELECT (SELECT count(*) FROM claimed), ARRAY(SELECT id FROM made)"
)


def any_endpoint_for_memberships(session: Session, membership_ids: Sequence[str]) -> bool:
    """Whether an enabled endpoint exists in the organization of any of these memberships
    (is a fan-out worth a message right after this commit?)."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    WebhookEndpoint.enabled.is_(True),
                    WebhookEndpoint.organization_id.in_(
                        select(Membership.organization_id).where(
                            Membership.id.in_(list(membership_ids))
                        )
                    ),
                )
            )
        )
    )


# ---- the apps' removal confirmations (also written by the after-change hooks) -------------


def add_confirmations(session: Session, now: datetime, membership_ids: Sequence[str]) -> int:
    """One open confirmation per enabled ``confirms_removal`` endpoint of each membership's
    organization, as of now (a membership that has them already keeps its rows). Costs
    one small query when no organization has such an endpoint (the sweep's batches)."""
    if not membership_ids:
        return 0
    apps = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.organization_id, WebhookEndpoint.url).where(
            WebhookEndpoint.enabled.is_(True), WebhookEndpoint.confirms_removal.is_(True)
        )
    ).all()
    if not apps:
        return 0
    by_org: dict[str, list[Any]] = {}
    for app in apps:
        by_org.setdefault(str(app.organization_id), []).append(app)
    moved = session.execute(
        select(Membership.id, Membership.organization_id).where(
            Membership.id.in_(list(membership_ids)),
            Membership.organization_id.in_(sorted(by_org)),
        )
    ).all()
    if not moved:
        return 0
    existing = set(
        session.execute(
            select(RemovalAppConfirmation.membership_id, RemovalAppConfirmation.webhook_id).where(
                RemovalAppConfirmation.membership_id.in_([str(m.id) for m in moved])
            )
        ).all()
    )
    rows = [
        {
            "id": new_id(),
            "membership_id": str(m.id),
            "webhook_id": str(app.id),
            "url": app.url,
            "created_at": now,
        }
        for m in moved
        for app in by_org[str(m.organization_id)]
        if (str(m.id), str(app.id)) not in existing
    ]
    if rows:
        session.execute(insert(RemovalAppConfirmation), rows)
    return len(rows)


def waiting_on_apps() -> Any:
    """A condition on ``memberships``: its own data is removed and an app has not
    confirmed yet."""
    return exists().where(
        RemovalAppConfirmation.membership_id == Membership.id,
        RemovalAppConfirmation.confirmed_at.is_(None),
        RemovalAppConfirmation.rows_removed_at.is_not(None),
    )


class WebhookDeliveries(Repository):
    """Deliveries of events to endpoints and the apps' removal confirmations
    (``uow.deliveries``)."""

    # ---- the fan-out and the sweep's claims ---------------------------------------------------

    def fan_out_batch(self, now: datetime, limit: int) -> tuple[int, list[str]]:
        """Claim up to ``limit`` undispatched events (oldest first, locked), add one pending
        delivery per enabled endpoint of their organization whose filter takes them, and
        mark them dispatched. Returns how many events were claimed and the new deliveries'
        ids."""
        session = self.session
        if is_postgresql(session):
            return self._fan_out_batch_on_postgresql(now, limit)
        events = session.execute(
            _locked(
                select(Event.id, Event.type, Event.organization_id)
                .where(Event.dispatched_at.is_(None))
                .order_by(Event.id)
                .limit(limit)
            )
        ).all()
        if events:
            session.execute(
                update(Event)
                .where(Event.id.in_([e.id for e in events]))
                .values(dispatched_at=now)
                .execution_options(synchronize_session=False)
            )
        if not events:
            return 0, []
        organizations = sorted({str(e.organization_id) for e in events})
        endpoints = session.execute(
            select(
                WebhookEndpoint.id, WebhookEndpoint.organization_id, WebhookEndpoint.events
            ).where(
                WebhookEndpoint.organization_id.in_(organizations),
                WebhookEndpoint.enabled.is_(True),
            )
        ).all()
        by_org: dict[str, list[Any]] = {}
        for endpoint in endpoints:
            by_org.setdefault(str(endpoint.organization_id), []).append(endpoint)
        rows: list[dict[str, Any]] = []
        for event in events:
            for endpoint in by_org.get(str(event.organization_id), ()):
                if endpoint_wants(endpoint.events, event.type):
                    rows.append(
                        {
                            "id": new_id(),
                            "endpoint_id": endpoint.id,
                            "event_id": event.id,
                            "state": PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "enqueued_at": now,
                            "created_at": now,
                        }
                    )
        if rows:
            session.execute(insert(WebhookDelivery), rows)
        return len(events), [r["id"] for r in rows]

    def _fan_out_batch_on_postgresql(self, now: datetime, limit: int) -> tuple[int, list[str]]:
        row = self.session.execute(
            _FAN_OUT_ON_POSTGRESQL.bindparams(
                bindparam("now", now, type_=UTCDateTime()), bindparam("limit", limit)
            )
        ).one()
        return int(row[0]), [str(i) for i in row[1]]

    def claim_due(self, now: datetime, resend_before: datetime, limit: int) -> list[str]:
        """Pending deliveries due now whose message, if any, was sent before
        ``resend_before`` (lost, or never sent) and that no worker holds: locked, marked
        sent now."""
        ids = list(
            self.session.scalars(
                _locked(
                    select(WebhookDelivery.id)
                    .where(
                        WebhookDelivery.state == PENDING,
                        WebhookDelivery.next_attempt_at <= now,
                        or_(
                            WebhookDelivery.enqueued_at.is_(None),
                            WebhookDelivery.enqueued_at < resend_before,
                        ),
                        or_(
                            WebhookDelivery.claimed_until.is_(None),
                            WebhookDelivery.claimed_until < now,
                        ),
                    )
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(limit)
                )
            )
        )
        if ids:
            self.session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id.in_(ids))
                .values(enqueued_at=now)
                .execution_options(synchronize_session=False)
            )
        return ids

    # ---- one delivery and its attempts --------------------------------------------------------

    def get(self, delivery_id: str) -> WebhookDelivery | None:
        """The delivery with this id, from the session's identity map when it holds it."""
        return self.session.get(WebhookDelivery, delivery_id)

    def reload(self, delivery_id: str) -> WebhookDelivery | None:
        """The delivery with this id as the database has it now (loaded attributes
        overwritten)."""
        return self.session.get(WebhookDelivery, delivery_id, populate_existing=True)

    def refresh(self, delivery: WebhookDelivery) -> None:
        """Read the delivery's row again (after a commit that changed it by statement)."""
        self.session.refresh(delivery)

    def event_of(self, delivery: WebhookDelivery) -> Event | None:
        """The event the delivery carries, from the session's identity map when it holds
        it."""
        return self.session.get(Event, delivery.event_id)

    def page_of_endpoint(
        self, endpoint_id: str, after: str | None, limit: int
    ) -> Sequence[WebhookDelivery]:
        """A page of the endpoint's deliveries, after the id ``after``
        (``page_after``)."""
        query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
        return self.page_after(query, WebhookDelivery.id, after, limit)

    def recent_of_endpoint(
        self, endpoint_id: str, limit: int
    ) -> list[tuple[WebhookDelivery, Event]]:
        """The endpoint's latest ``limit`` deliveries with their events, newest first."""
        rows = self.session.execute(
            select(WebhookDelivery, Event)
            .join(Event, Event.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.created_at.desc(), Event.id.desc())
            .limit(limit)
        ).all()
        return [(delivery, event) for delivery, event in rows]

    def claim_attempt(self, delivery_id: str, now: datetime, hold_until: datetime) -> bool:
        """Take the due attempt of a pending delivery (compare-and-set): ``False`` when it
        is not pending, not due, or held by another worker right now."""
        result = self.session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.state == PENDING,
                WebhookDelivery.next_attempt_at <= now,
                or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            )
            .values(
                claimed_until=hold_until,
                attempts=WebhookDelivery.attempts + 1,
                last_attempt_at=now,
                first_attempt_at=func.coalesce(WebhookDelivery.first_attempt_at, now),
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]  # an UPDATE's result

    def record_attempt(
        self,
        delivery_id: str,
        attempt: int,
        *,
        state: str,
        next_attempt_at: datetime | None,
        status_code: int | None,
        error: str | None,
        delivered_at: datetime | None,
    ) -> bool:
        """The outcome of attempt number ``attempt`` (only if no later one was taken
        since)."""
        result = self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.attempts == attempt)
            .values(
                {
                    # The delivery's state (keyed by its column: no membership's state).
                    WebhookDelivery.state: state,
                    WebhookDelivery.next_attempt_at: next_attempt_at,
                    WebhookDelivery.last_status_code: status_code,
                    WebhookDelivery.last_error: error,
                    WebhookDelivery.delivered_at: delivered_at,
                    WebhookDelivery.claimed_until: None,
                    # The message that asked for this attempt is used up: the next one is
                    # sent when the attempt is due.
                    WebhookDelivery.enqueued_at: None,
                }
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0) == 1  # type: ignore[attr-defined]  # an UPDATE's result

    def fail_pending_of_endpoint(self, endpoint_id: str, reason: str) -> int:
        """Every pending delivery of a disabled endpoint: failed, saying why. The changes
        of this unit of work (the endpoint's disabling) are written first."""
        self.session.flush()
        result = self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id, WebhookDelivery.state == PENDING)
            .values(
                {
                    WebhookDelivery.state: FAILED,
                    WebhookDelivery.next_attempt_at: None,
                    WebhookDelivery.last_error: reason,
                    WebhookDelivery.claimed_until: None,
                }
            )
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]  # an UPDATE's result

    def send_again_now(self, delivery_id: str, now: datetime) -> None:
        """A pending or failed delivery due now, its retry period starting again."""
        self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id)
            .values(
                {
                    WebhookDelivery.state: PENDING,
                    WebhookDelivery.next_attempt_at: now,
                    WebhookDelivery.enqueued_at: now,
                    WebhookDelivery.claimed_until: None,
                    WebhookDelivery.first_attempt_at: None,
                }
            )
            .execution_options(synchronize_session=False)
        )

    # ---- the apps' removal confirmations ------------------------------------------------------

    def open_confirmations(self, membership_ids: Sequence[str]) -> set[str]:
        """Those of ``membership_ids`` with an app that has not confirmed their removal."""
        if not membership_ids:
            return set()
        return {
            str(m)
            for m in self.session.scalars(
                select(RemovalAppConfirmation.membership_id)
                .where(
                    RemovalAppConfirmation.membership_id.in_(list(membership_ids)),
                    RemovalAppConfirmation.confirmed_at.is_(None),
                )
                .distinct()
            )
        }

    def mark_rows_removed(self, membership_ids: Sequence[str], now: datetime) -> None:
        """The service's own data of these memberships is gone: their open confirmations
        now hold the removal up (the sweep's re-drive leaves them alone until they are
        answered)."""
        if not membership_ids:
            return
        self.session.execute(
            update(RemovalAppConfirmation)
            .where(
                RemovalAppConfirmation.membership_id.in_(list(membership_ids)),
                RemovalAppConfirmation.confirmed_at.is_(None),
                RemovalAppConfirmation.rows_removed_at.is_(None),
            )
            .values(rows_removed_at=now)
            .execution_options(synchronize_session=False)
        )

    def count_waiting_on_apps(self, now: datetime) -> tuple[int, int]:
        """Purge-pending memberships with an app that has not confirmed: all of them, and
        those past ``removal_due_by``."""
        has_open = exists().where(
            RemovalAppConfirmation.membership_id == Membership.id,
            RemovalAppConfirmation.confirmed_at.is_(None),
        )
        base = (
            select(func.count())
            .select_from(Membership)
            .where(Membership.state == MembershipState.PURGE_PENDING.value, has_open)
        )
        waiting = self.session.scalar(base) or 0
        overdue = self.session.scalar(base.where(and_(Membership.removal_due_by < now))) or 0
        return int(waiting), int(overdue)

    def open_confirmation(
        self, membership_id: str, webhook_id: str
    ) -> RemovalAppConfirmation | None:
        """The open confirmation of ``webhook_id`` for a purge-pending membership, if any."""
        return self.session.scalar(
            select(RemovalAppConfirmation)
            .join(Membership, Membership.id == RemovalAppConfirmation.membership_id)
            .where(
                RemovalAppConfirmation.membership_id == membership_id,
                RemovalAppConfirmation.webhook_id == webhook_id,
                RemovalAppConfirmation.confirmed_at.is_(None),
                Membership.state == MembershipState.PURGE_PENDING.value,
            )
        )

    def confirmation_with_token(self, token_hash: str) -> RemovalAppConfirmation | None:
        """The confirmation whose confirmUrl token has this hash, locked (``FOR UPDATE``)."""
        return self.session.scalar(
            select(RemovalAppConfirmation)
            .where(RemovalAppConfirmation.token_hash == token_hash)
            .with_for_update()
        )

    def confirmation_of(self, membership_id: str, webhook_id: str) -> RemovalAppConfirmation | None:
        """The confirmation of ``webhook_id`` for the membership, open or not, locked
        (``FOR UPDATE``)."""
        return self.session.scalar(
            select(RemovalAppConfirmation)
            .where(
                RemovalAppConfirmation.membership_id == membership_id,
                RemovalAppConfirmation.webhook_id == webhook_id,
            )
            .with_for_update()
        )

    def reload_confirmation(self, confirmation_id: str) -> RemovalAppConfirmation | None:
        """The confirmation with this id as the database has it now (loaded attributes
        overwritten)."""
        return self.session.get(RemovalAppConfirmation, confirmation_id, populate_existing=True)

    def confirmations_of(self, membership_id: str) -> Sequence[RemovalAppConfirmation]:
        """Every app's confirmation of the membership's removal, in the order they were
        made (then by app)."""
        return self.session.scalars(
            select(RemovalAppConfirmation)
            .where(RemovalAppConfirmation.membership_id == membership_id)
            .order_by(RemovalAppConfirmation.created_at, RemovalAppConfirmation.webhook_id)
        ).all()

    def replace_token(self, confirmation: RemovalAppConfirmation, token_hash: str) -> None:
        """Store the hash of the confirmation's new confirmUrl token (the last one's stops
        working), flushed."""
        confirmation.token_hash = token_hash
        self.session.flush()

    def count_open_confirmations(self, membership_id: str) -> int:
        """How many of the membership's apps have not confirmed yet, counted after this
        unit of work's changes are written."""
        self.session.flush()
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(RemovalAppConfirmation)
                .where(
                    RemovalAppConfirmation.membership_id == membership_id,
                    RemovalAppConfirmation.confirmed_at.is_(None),
                )
            )
            or 0
        )
