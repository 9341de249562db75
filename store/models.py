"""SQLAlchemy 2 typed models: what the service stores.

Personal fields of a membership (the guest account's e-mail and name as this
organization sees them) live on the membership row so that a purge can erase
them; the audit log holds ids, codes and states only, never copies of them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal, get_args

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    and_,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.elements import ColumnElement

from statemachines.membership import MembershipKind, MembershipState
from store.roles import ADMIN_ROLES as ADMIN_ROLES
from store.roles import ROLES as ROLES


def new_id() -> str:
    return str(uuid.uuid4())


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC one is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if getattr(dialect, "name", "") == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _values(enum: type) -> str:
    return ", ".join(f"'{m.value}'" for m in enum)  # type: ignore[attr-defined]


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


GUID = String(36)


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    domain: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    privacy_contact_email: Mapped[str | None] = mapped_column(String(320))
    privacy_statement_url: Mapped[str | None] = mapped_column(String(255))
    external_user_leave_allowed: Mapped[bool] = mapped_column(
        Boolean, default=True, server_default=text("true")
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    # Personal fields: erased (null) once the user's last membership anywhere is purged.
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(255))
    home_organization_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Written into each page session at sign-in; sign-out advances it, which ends every
    # session of the user that was started before (migration 0004).
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # Whether the user is mailed about changes they made themself (their own leave); changes
    # made by an organization or the service are always mailed (migration 0009).
    email_own_changes: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (
        CheckConstraint(f"state IN ({_values(MembershipState)})", name="state"),
        CheckConstraint(f"kind IN ({_values(MembershipKind)})", name="kind"),
        # One live membership per user and organization; purged tombstones do not count,
        # so a purged guest can be invited again.
        Index(
            "uq_memberships_live_user_org",
            "user_id",
            "organization_id",
            unique=True,
            sqlite_where=text("state <> 'purged'"),
            postgresql_where=text("state <> 'purged'"),
        ),
        Index("ix_memberships_org_state", "organization_id", "state", "id"),
        Index("uq_memberships_pseudonym", "pseudonym", unique=True),
        # The sweep's claim: due soft-deleted rows in due order.
        Index(
            "ix_memberships_due_purge",
            "purge_due_at",
            sqlite_where=text("state = 'soft-deleted'"),
            postgresql_where=text("state = 'soft-deleted'"),
        ),
        # The sweep's re-drive (in-progress rows with no recent progress) and its count of
        # removals past their window (migration 0003).
        Index(
            "ix_memberships_in_progress",
            "state",
            "last_progress_at",
            sqlite_where=text("state IN ('leave-pending', 'purge-pending')"),
            postgresql_where=text("state IN ('leave-pending', 'purge-pending')"),
        ),
        Index(
            "ix_memberships_removal_due",
            "removal_due_by",
            sqlite_where=text("state = 'purge-pending'"),
            postgresql_where=text("state = 'purge-pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    # Null once purged: a tombstone does not lead back to the person.
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True)
    # The membership's own pseudonym (a random GUID): the audit log names the guest by it
    # when they act, and the tombstone shows it where the user id was. It leads to this
    # membership only. (Migration 0005 also gives the column a database default, so that
    # rows inserted in bulk get one.)
    pseudonym: Mapped[str] = mapped_column(GUID, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    kind: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    state: Mapped[str] = mapped_column(
        String(32), default=MembershipState.ACTIVE.value, server_default=MembershipState.ACTIVE
    )
    version: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    # Personal fields: the guest account as this organization sees it. Erased by the purge.
    email: Mapped[str | None] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(255))

    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    leave_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    soft_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purge_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    restored_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purge_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removal_due_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # Data-removal progress and failures live here, not only in the broker.
    removed_rows: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_progress_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)


def removal_overdue(now: datetime) -> ColumnElement[bool]:
    """A ``purge-pending`` membership past its ``removal_due_by``: the data-removal window
    missed. The one statement of the rule, for the sweep's count, the timers and the
    Operations page."""
    return and_(
        Membership.state == MembershipState.PURGE_PENDING.value,
        Membership.removal_due_by < now,
    )


class Grant(Base):
    """A group membership or app-role assignment held by a membership."""

    __tablename__ = "grants"
    __table_args__ = (
        CheckConstraint("kind IN ('group', 'app-role')", name="kind"),
        UniqueConstraint("membership_id", "kind", "name", name="uq_grants_membership_kind_name"),
    )

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    membership_id: Mapped[str] = mapped_column(ForeignKey("memberships.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(255))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MemberData(Base):
    """The user's records in the organization, which data removal must erase."""

    __tablename__ = "member_data"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    membership_id: Mapped[str] = mapped_column(ForeignKey("memberships.id"), index=True)
    category: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RoleAssignment(Base):
    """A directory role in one organization, or the platform ``operator`` role (no organization)."""

    __tablename__ = "role_assignments"
    __table_args__ = (
        CheckConstraint(f"role IN ({', '.join(repr(r) for r in ROLES)})", name="role"),
        CheckConstraint(
            "(role = 'operator') = (organization_id IS NULL)", name="operator_is_platform_wide"
        ),
        UniqueConstraint("user_id", "organization_id", "role", name="uq_role_assignments"),
    )

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    organization_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id"))
    role: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


INVITATION_STATUSES = ("pending", "accepted", "declined", "revoked")


class Invitation(Base):
    """An admin's invitation for an e-mail address to join an organization as a guest.

    The membership exists only once the person signed in with that e-mail accepts.
    ``email`` is kept as the admin typed it; ``email_key`` (lower case) is what is
    matched. A pending invitation past ``expires_at`` is expired (no job changes it).
    """

    __tablename__ = "invitations"
    __table_args__ = (
        CheckConstraint(
            f"status IN ({', '.join(repr(s) for s in INVITATION_STATUSES)})", name="status"
        ),
        CheckConstraint(f"kind IN ({_values(MembershipKind)})", name="kind"),
        Index("ix_invitations_org_email", "organization_id", "email_key"),
        Index("ix_invitations_email_status", "email_key", "status"),
    )

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320))
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    invited_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    responded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    membership_id: Mapped[str | None] = mapped_column(GUID, index=True)


class AuditEvent(Base):
    """Append-only: triggers refuse UPDATE, DELETE and (PostgreSQL) TRUNCATE. Ids, codes
    and states only."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint("outcome IN ('allowed', 'denied')", name="outcome"),
        Index("ix_audit_events_org_id", "organization_id", "id"),
        Index("ix_audit_events_membership_id", "membership_id", "id"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    organization_id: Mapped[str | None] = mapped_column(GUID)
    membership_id: Mapped[str | None] = mapped_column(GUID)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(64))


class IdempotencyKey(Base):
    """A POST's ``Idempotency-Key``: the first response, replayed when the request is retried.

    Keyed by the caller and the key, so two callers never see each other's responses. A
    row without ``status_code`` is a request still being carried out; one whose
    ``locked_until`` has passed was abandoned (a crash) and may be taken over. The stored
    response can hold a membership's personal fields, so ``membership_id`` lets data
    removal erase it with the rest of the membership's data.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("principal_id", "key", name="uq_idempotency_keys_principal_key"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    principal_id: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    membership_id: Mapped[str | None] = mapped_column(GUID, index=True)
    status_code: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[str | None] = mapped_column(Text)
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class WorkerHeartbeat(Base):
    """A worker process that is alive: it rewrites ``seen_at`` every few seconds.

    Kept in the database, not in the broker, so the operators' count of live workers
    works the same on Redis and RabbitMQ. ``queues`` and ``in_flight`` are JSON: the
    queues it consumes, and per queue the messages it is running or holding for a
    retry's backoff (``{"removals": {"running": 2, "delayed": 0}}``).
    """

    __tablename__ = "worker_heartbeats"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[str] = mapped_column(Text)
    threads: Mapped[int] = mapped_column(Integer)
    in_flight: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


EVENT_DELIVERY_STATES = ("pending", "delivered", "failed")


class Event(Base):
    """The outbox: one row per lifecycle transition or organization change, written in
    the transaction of the change (so an event exists if and only if the change
    committed). ``id`` gives the order events were written in; ``event_id`` is what
    receivers see (the ``webhook-id``). ``payload`` is the JSON body sent; a purge
    redacts the personal fields of its membership's events. ``dispatched_at`` is set
    once the event has been handed to its endpoints' deliveries."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_org_id", "organization_id", "id"),
        Index(
            "ix_events_undispatched",
            "id",
            sqlite_where=text("dispatched_at IS NULL"),
            postgresql_where=text("dispatched_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    # 128 random bits after a time prefix (store.outbox.new_event_id): unique by
    # construction, so no unique index taxes every insert of the sweep's batches.
    event_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[str] = mapped_column(GUID)
    membership_id: Mapped[str | None] = mapped_column(GUID, index=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    payload: Mapped[str] = mapped_column(Text)
    dispatched_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookEndpoint(Base):
    """An organization's webhook endpoint. ``events`` is a JSON list of event types (null:
    every type). ``secret`` signs every delivery; after a rotation ``previous_secret``
    signs alongside it until ``previous_secret_expires_at``. ``confirms_removal`` marks
    an app that holds guests' data and must confirm their removal. A disabled endpoint
    (``enabled`` false) says why in ``disabled_reason``; ``failing_since`` is the first
    failed attempt of the current run of failures."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None] = mapped_column(Text)
    events: Mapped[str | None] = mapped_column(Text)
    confirms_removal: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    secret: Mapped[str] = mapped_column(String(128))
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """One event sent to one endpoint, retried until delivered or failed. The database
    holds when the next attempt is due (``next_attempt_at``), like every timer here: a
    lost broker message is sent again by the sweep. No request body is kept (the event
    row holds it, redacted on purge)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint(
            f"state IN ({', '.join(repr(s) for s in EVENT_DELIVERY_STATES)})", name="state"
        ),
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_endpoint_id", "endpoint_id", "id"),
        Index(
            "ix_webhook_deliveries_due",
            "next_attempt_at",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("events.id"), index=True
    )
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # When the first attempt was made: the retry period runs from it.
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a message for the due attempt was last sent (the sweep sends again after
    # ``redrive_after``); while an attempt is being made, until when it is held.
    enqueued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class RemovalAppConfirmation(Base):
    """A connected app (an endpoint with ``confirms_removal``, as of the moment removal
    started) that must confirm a membership's data removal before it is purged.
    ``confirmed_via`` is ``url`` (its confirmUrl), ``delivery`` (it answered the
    delivery with ``{"removed": true}``) or ``manual`` (an admin, ``confirmed_by``, with
    ``note``). ``url`` is the endpoint's address then, kept after the endpoint goes."""

    __tablename__ = "removal_app_confirmations"
    __table_args__ = (
        UniqueConstraint(
            "membership_id", "webhook_id", name="uq_removal_app_confirmations_membership_webhook"
        ),
        CheckConstraint(
            "confirmed_via IS NULL OR confirmed_via IN ('url', 'delivery', 'manual')",
            name="confirmed_via",
        ),
    )

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    membership_id: Mapped[str] = mapped_column(ForeignKey("memberships.id"), index=True)
    webhook_id: Mapped[str] = mapped_column(GUID)
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    confirmed_via: Mapped[str | None] = mapped_column(String(16))
    confirmed_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    # SHA-256 of the confirmUrl's token (the token itself is never stored).
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True, index=True)
    # When the service's own data of the membership was found removed while this app had
    # not confirmed yet: the removal then waits on the app, not on a lost message.
    rows_removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


REMOVAL_REQUEST_STATUSES = ("open", "approved", "declined", "closed")


class RemovalRequest(Base):
    """A member's request that the organization remove them, made where they may not leave
    on their own (``leave-disabled``, ``account-disabled``). The organization answers by
    ``due_by``: ``approved`` (the membership is removed as an admin removal does),
    ``declined`` (with ``decline_reason``, which the member reads), or the request is
    ``closed`` by itself when the membership leaves ``active``/``restored`` some other way
    (``closed_reason``, a code). An open request past ``due_by`` is overdue; the sweep
    notes when it saw that (``overdue_at``) and says so once. At most one open request per
    membership. ``message`` (the member's) and ``decline_reason`` are free text and are
    erased when the membership is purged."""

    __tablename__ = "removal_requests"
    __table_args__ = (
        CheckConstraint(
            f"status IN ({', '.join(repr(s) for s in REMOVAL_REQUEST_STATUSES)})", name="status"
        ),
        Index(
            "uq_removal_requests_open_membership",
            "membership_id",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_removal_requests_org_due", "organization_id", "due_by", "id"),
        # The sweep's claim: open requests not yet marked overdue, in due order.
        Index(
            "ix_removal_requests_open_due",
            "due_by",
            sqlite_where=text("status = 'open' AND overdue_at IS NULL"),
            postgresql_where=text("status = 'open' AND overdue_at IS NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(GUID, primary_key=True, default=new_id)
    membership_id: Mapped[str] = mapped_column(ForeignKey("memberships.id"), index=True)
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_by: Mapped[datetime] = mapped_column(UTCDateTime)
    overdue_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_by: Mapped[str | None] = mapped_column(String(64))
    decline_reason: Mapped[str | None] = mapped_column(Text)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_reason: Mapped[str | None] = mapped_column(String(64))


# ---- what a member is told (migration 0009) ----------------------------------------------------

NoticeKind = Literal[
    "membership.left",
    "membership.removed",
    "membership.restored",
    "membership.removal_started",
    "membership.purged",
    "removal_request.approved",
    "removal_request.declined",
    "removal_request.overdue",
    "removal_request.closed",
]
"""What a notice tells its member, one sentence each on the Organizations page and in mail."""

NOTICE_KINDS: tuple[str, ...] = get_args(NoticeKind)


class Notice(Base):
    """One change a member is told of: addressed to the user, kept apart from the
    membership so that it outlives the membership's purge. Once the membership is purged,
    ``membership_id`` is null (the notice no longer leads to the tombstone) and only the
    organization, the kind and the date remain. ``caused_by_member`` marks the member's own
    changes (their leave), mailed only if they asked for it (``users.email_own_changes``).
    ``data`` is JSON: dates that belong to the change (``restorableUntil``, ``removalDueBy``)
    and an organization's answer (``reason``)."""

    __tablename__ = "notices"
    __table_args__ = (
        CheckConstraint(f"kind IN ({', '.join(repr(k) for k in NOTICE_KINDS)})", name="kind"),
        Index("ix_notices_user_occurred", "user_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    organization_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"))
    membership_id: Mapped[str | None] = mapped_column(GUID, index=True)
    kind: Mapped[str] = mapped_column(String(64))
    caused_by_member: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    data: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")


MAIL_STATES = ("pending", "sent", "failed")


class MailMessage(Base):
    """The mail outbox: one e-mail to a member about one notice, written in the transaction
    of the change, sent after the commit by the ``mail`` queue's worker, retried with the
    next attempt's time kept here (``next_attempt_at``; the sweep re-sends what is due and
    was not queued lately, ``queued_at``). ``subject`` and the bodies are what was (or is
    to be) sent, written at the first attempt. Once the membership is purged
    (``membership_id`` null), the recipient and the content are erased as soon as the mail
    is sent or has failed: the row keeps only that a mail of ``kind`` went out, and when."""

    __tablename__ = "mail_messages"
    __table_args__ = (
        CheckConstraint(f"state IN ({', '.join(repr(s) for s in MAIL_STATES)})", name="state"),
        Index(
            "ix_mail_messages_due",
            "next_attempt_at",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    notice_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), index=True
    )
    membership_id: Mapped[str | None] = mapped_column(GUID, index=True)
    organization_id: Mapped[str] = mapped_column(GUID)
    kind: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    body_text: Mapped[str | None] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    queued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
